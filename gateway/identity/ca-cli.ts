/**
 * What `meshgate ca init` and `meshgate ca issue` do, as plain functions returning an exit code and a
 * message (the CLI module parses flags and prints). Files follow Istio's plug-in CA naming where one exists.
 */
import { constants } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createRootCa, issueWorkloadCertificate } from './ca.js';
import { OID, nameValues, parseCertificate } from './certificate.js';
import { isValidTrustDomain, spiffeUri } from './spiffe.js';

export interface CliResult {
  readonly exitCode: number;
  readonly message: string;
}

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const ROOT_CERT_FILE = 'root-cert.pem';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_WORKLOAD_VALIDITY_HOURS = 24 * 90;

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

export interface CaInitOptions {
  readonly dir: string;
  readonly trustDomain?: string;
  /** Overwrite an existing CA (every issued certificate stops being trusted). */
  readonly force?: boolean;
}

export async function caInit(options: CaInitOptions): Promise<CliResult> {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (!isValidTrustDomain(trustDomain)) {
    return { exitCode: EXIT_USAGE, message: `invalid --trust-domain "${trustDomain}": use lower-case letters, digits, '.', '-', '_'` };
  }
  const certPath = join(options.dir, CA_CERT_FILE);
  const keyPath = join(options.dir, CA_KEY_FILE);
  if (options.force !== true && (await exists(keyPath))) {
    return { exitCode: EXIT_FAILURE, message: `${keyPath} already exists; refusing to replace the CA (pass --force to do so)` };
  }
  try {
    await mkdir(options.dir, { recursive: true });
    const ca = await createRootCa({ trustDomain });
    await writeFile(keyPath, ca.keyPem, { mode: 0o600 });
    await writeFile(certPath, ca.certPem);
  } catch (error) {
    return { exitCode: EXIT_FAILURE, message: `cannot write the CA to ${options.dir}: ${(error as Error).message}` };
  }
  return { exitCode: EXIT_OK, message: `created CA for trust domain ${trustDomain}: ${certPath}, ${keyPath}` };
}

export interface CaIssueOptions {
  readonly dir: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly out?: string;
  /** Defaults to the trust domain recorded in the CA's subject (O=) by `caInit`. */
  readonly trustDomain?: string;
  readonly validityHours?: number;
}

function trustDomainOf(caCertPem: string): string {
  const organisation = nameValues(parseCertificate(new X509Certificate(caCertPem).raw).subject, OID.organization)[0];
  return organisation !== undefined && isValidTrustDomain(organisation) ? organisation : DEFAULT_TRUST_DOMAIN;
}

export async function caIssue(options: CaIssueOptions): Promise<CliResult> {
  const certPath = join(options.dir, CA_CERT_FILE);
  const keyPath = join(options.dir, CA_KEY_FILE);
  let ca: { certPem: string; keyPem: string };
  try {
    ca = { certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8') };
  } catch (error) {
    const { path, code } = error as NodeJS.ErrnoException;
    return { exitCode: EXIT_FAILURE, message: `cannot read ${path ?? options.dir} (${code ?? 'error'}); run "meshgate ca init --dir ${options.dir}" first` };
  }
  const trustDomain = options.trustDomain ?? trustDomainOf(ca.certPem);
  let uri: string;
  try {
    uri = spiffeUri(trustDomain, options.namespace, options.serviceAccount);
  } catch (error) {
    return { exitCode: EXIT_USAGE, message: (error as Error).message };
  }
  const out = options.out ?? options.dir;
  const files = {
    cert: join(out, `${options.serviceAccount}.crt`),
    key: join(out, `${options.serviceAccount}.key`),
    root: join(out, ROOT_CERT_FILE),
  };
  try {
    const issued = await issueWorkloadCertificate({
      ca,
      trustDomain,
      namespace: options.namespace,
      serviceAccount: options.serviceAccount,
      validityHours: options.validityHours ?? DEFAULT_WORKLOAD_VALIDITY_HOURS,
    });
    await mkdir(out, { recursive: true });
    await writeFile(files.key, issued.keyPem, { mode: 0o600 });
    await writeFile(files.cert, issued.chainPem);
    await writeFile(files.root, ca.certPem);
  } catch (error) {
    return { exitCode: EXIT_FAILURE, message: `cannot issue ${uri}: ${(error as Error).message}` };
  }
  return {
    exitCode: EXIT_OK,
    message: `issued ${uri}\n  certChain: ${files.cert}\n  privateKey: ${files.key}\n  rootCert: ${files.root}`,
  };
}
