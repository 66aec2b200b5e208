/**
 * Issue 22: the certificates a Gateway serves are visible to the operator like the mesh identity —
 * listed by the admin `/certs` with their expiry and exported as
 * `meshgate_certificate_expiry_timestamp_seconds` — and follow rotation of their files and reloads
 * that remove a server. Real TLS handshakes check that what is listed is what clients get.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueServerCertificate } from '../../gateway/identity/ca.js';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePorts, gatewayYaml, httpsRequest, meshConfigYaml, serviceEntryYaml, virtualServiceYaml } from '../e2e-ingress/support.js';

interface CertsBody {
  identity: { principal: string };
  servedCertificates: {
    listener: string;
    server: string;
    hosts: string[];
    certPath: string;
    subjectAltNames: string[];
    subject: string;
    validTo: string;
    secondsToExpiry: number;
    fingerprint256: string;
    clientCaPath: string | null;
    clientCertificateAuthorities: { subject: string; validTo: string }[];
  }[];
}

const pki = await makeTestPki();
const files = await mkdtemp(join(tmpdir(), 'meshgate-served-certs-'));
t.teardown(() => rm(files, { recursive: true, force: true }));

/** Writes a fresh certificate for `host`, valid `days`, to the fixed paths the Gateway names. */
async function writeServerCert(host: string, days: number): Promise<{ certPath: string; keyPath: string; pem: string }> {
  const issued = await issueServerCertificate({ ca: pki.ca, dnsNames: [host], validityDays: days });
  const certPath = join(files, `${host}.crt`);
  const keyPath = join(files, `${host}.key`);
  // The key first: the watcher reloads on the certificate change and must find a matching key.
  await writeFile(`${keyPath}.new`, issued.keyPem);
  await writeFile(`${certPath}.new`, issued.chainPem);
  await copyFile(`${keyPath}.new`, keyPath);
  await copyFile(`${certPath}.new`, certPath);
  return { certPath, keyPath, pem: issued.certPem };
}

const publicCert = await writeServerCert('public.example.com', 30);
const partnerCert = await writeServerCert('partner.example.com', 60);
const app = await startUpstream();
t.teardown(() => app.close());
const [admin = 0, port = 0] = await freePorts(2);

const simpleServer = `    - port: {number: ${port}, name: https-public, protocol: HTTPS}
      name: public
      hosts: ["public.example.com"]
      tls: {mode: SIMPLE, serverCertificate: ${publicCert.certPath}, privateKey: ${publicCert.keyPath}}
`;
const mutualServer = `    - port: {number: ${port}, name: https-partner, protocol: HTTPS}
      hosts: ["partner.example.com"]
      tls: {mode: MUTUAL, serverCertificate: ${partnerCert.certPath}, privateKey: ${partnerCert.keyPath}, caCertificates: ${pki.ca.certPath}}
`;
const yaml = (servers: string): string =>
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', servers),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    virtualServiceYaml('app', ['public.example.com', 'partner.example.com'], 'edge', '    - route:\n        - destination: {host: app.internal}\n'),
  ].join('\n');

const dir = await configDir(yaml(simpleServer + mutualServer));
t.teardown(() => dir.remove());
const gateway = await startGateway(dir.file);
t.teardown(() => gateway.stop());

async function certs(): Promise<CertsBody> {
  return (await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as CertsBody;
}

/** `identity` label → value of the expiry gauge. */
async function expirySeries(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text();
  const series = new Map<string, number>();
  for (const match of text.matchAll(/^meshgate_certificate_expiry_timestamp_seconds\{identity="([^"]*)"\} (\d+)$/gm)) {
    series.set(match[1] ?? '', Number(match[2]));
  }
  return series;
}

const unixSeconds = (pem: string): number => Math.floor(new Date(new X509Certificate(pem).validTo).getTime() / 1000);

t.test('/certs lists every served certificate with its server, hosts, expiry and client CAs, beside the mesh identity', async (t) => {
  const body = await certs();
  t.match(body.identity, { principal: 'cluster.local/ns/istio-system/sa/istio-ingressgateway' }, 'the mesh identity is still there');
  const byServer = new Map(body.servedCertificates.map((served) => [served.server, served]));
  t.same([...byServer.keys()].sort(), ['istio-system/edge/1', 'public']);
  const publicServed = byServer.get('public');
  t.match(publicServed, {
    hosts: ['public.example.com'],
    certPath: publicCert.certPath,
    subjectAltNames: ['DNS:public.example.com'],
    fingerprint256: new X509Certificate(publicCert.pem).fingerprint256,
    clientCaPath: null,
    clientCertificateAuthorities: [],
  });
  t.ok(publicServed?.listener.endsWith(`:${port}`), `listener ${publicServed?.listener}`);
  t.equal(Math.floor(Date.parse(publicServed?.validTo ?? '') / 1000), unixSeconds(publicCert.pem));
  const daysLeft = (publicServed?.secondsToExpiry ?? 0) / 86_400;
  t.ok(daysLeft > 29 && daysLeft <= 30, `secondsToExpiry counts down from 30 days (${daysLeft.toFixed(2)})`);
  const partner = byServer.get('istio-system/edge/1');
  t.equal(partner?.clientCaPath, pki.ca.certPath);
  t.equal(partner?.clientCertificateAuthorities.length, 1, 'the MUTUAL server lists the CA it trusts for clients');

  const handshake = await httpsRequest(port, '/', { servername: 'public.example.com', ca: pki.ca.certPem });
  t.equal(handshake.status, 200);
  t.equal(handshake.peerSubjectAltName, 'DNS:public.example.com', 'what /certs lists is what a client is served');
});

t.test('meshgate_certificate_expiry_timestamp_seconds has one series per served certificate and the mesh identity', async (t) => {
  const series = await expirySeries();
  t.equal(series.get('public'), unixSeconds(publicCert.pem));
  t.equal(series.get('istio-system/edge/1'), unixSeconds(partnerCert.pem));
  t.ok(series.has('cluster.local/ns/istio-system/sa/istio-ingressgateway'));
});

t.test('a rotated certificate file shows its new expiry in /certs and in the metric', async (t) => {
  const rotated = await writeServerCert('public.example.com', 7);
  const expected = unixSeconds(rotated.pem);
  const series = await eventually(expirySeries, (current) => current.get('public') === expected);
  t.equal(series.get('public'), expected, 'the gauge follows the file');
  const listed = (await certs()).servedCertificates.find((served) => served.server === 'public');
  t.equal(listed?.fingerprint256, new X509Certificate(rotated.pem).fingerprint256);
});

t.test('a reload that removes a server removes its series and its /certs entry', async (t) => {
  await dir.write(yaml(simpleServer));
  const reloaded = (await (await fetch(`http://127.0.0.1:${admin}/reload`, { method: 'POST' })).json()) as { ok: boolean };
  t.equal(reloaded.ok, true, 'the reload is applied');
  const series = await expirySeries();
  t.notOk(series.has('istio-system/edge/1'), 'the removed server has no series left');
  t.ok(series.has('public'));
  t.same(
    (await certs()).servedCertificates.map((served) => served.server),
    ['public'],
  );
});
