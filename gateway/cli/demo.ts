/**
 * `meshgate demo` (the README's `npm start`): the seed's mesh on localhost — an HTTPS ingress,
 * product-service v1/v2 and order-service, each app behind its own sidecar PROCESS, all driven by
 * config/demo/mesh.yaml with certificates from a CA this command creates. Ctrl-C stops everything.
 */
import type { ChildProcess } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueServerCertificate } from '../identity/ca.js';
import { caInit } from '../identity/ca-cli.js';
import { orderApp, productApp } from '../demo/apps.js';
import type { Values } from './args.js';
import { checkPortFree, PortInUseError, spawnProxy, waitProxyReady } from './demo-process.js';
import { EXIT_INVALID, EXIT_OK } from './usage.js';
import { releaseYoungGeneration } from '../runtime/young-generation.js';

const DEMO_CONFIG = fileURLToPath(new URL('../../../config/demo', import.meta.url));
const LOOPBACK = '127.0.0.1';

interface DemoProxy {
  readonly name: string;
  readonly args: readonly string[];
  readonly admin: string;
  /** The ports its listeners take in config/demo (checked before anything starts). */
  readonly ports: readonly number[];
}

/** The sidecars share the host with the ingress: only the ingress keeps the status (15021) and metrics (15020) ports, on loopback like the rest of the demo. */
const NO_OPERATOR_PORTS = ['--status-address=', '--metrics-address='];

const PROXIES: readonly DemoProxy[] = [
  {
    name: 'ingress',
    args: ['--mode', 'ingress', '--status-address=127.0.0.1:15021', '--metrics-address=127.0.0.1:15020'],
    admin: '127.0.0.1:15000',
    ports: [8443, 8080, 15021, 15020],
  },
  { name: 'product-v1-sidecar', args: ['--workload', 'my-app/product-v1', ...NO_OPERATOR_PORTS], admin: '127.0.0.1:15301', ports: [15101, 15201] },
  { name: 'product-v2-sidecar', args: ['--workload', 'my-app/product-v2', ...NO_OPERATOR_PORTS], admin: '127.0.0.1:15302', ports: [15102, 15202] },
  { name: 'order-service-sidecar', args: ['--workload', 'my-app/order-service', ...NO_OPERATOR_PORTS], admin: '127.0.0.1:15303', ports: [15103, 15203] },
];

const APPS: readonly { name: string; port: number; create: () => http.Server }[] = [
  { name: 'product-service v1', port: 9101, create: () => productApp('v1') },
  { name: 'product-service v2', port: 9102, create: () => productApp('v2') },
  { name: 'order-service', port: 9103, create: () => orderApp('http://127.0.0.1:15203') },
];

function adminPort(admin: string): number {
  return Number(admin.slice(admin.lastIndexOf(':') + 1));
}

async function prepareCertificates(generated: string): Promise<void> {
  await mkdir(generated, { recursive: true });
  if (!existsSync(join(generated, 'ca.crt'))) {
    const result = await caInit({ dir: generated });
    if (result.exitCode !== 0) throw new Error(result.message);
  }
  const credential = join(generated, 'credentials', 'ingress-cert');
  if (existsSync(join(credential, 'tls.crt'))) return;
  const ca = { certPem: await readFile(join(generated, 'ca.crt'), 'utf8'), keyPem: await readFile(join(generated, 'ca.key'), 'utf8') };
  const server = await issueServerCertificate({ ca, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  await mkdir(credential, { recursive: true });
  await writeFile(join(credential, 'tls.crt'), server.chainPem);
  await writeFile(join(credential, 'tls.key'), server.keyPem, { mode: 0o600 });
}

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the demo runs from: the config directory itself when it is writable (certificates and logs go
 * to its `.generated/`), else a copy of its config files in `workDir` — an installed package or a
 * container's non-root user cannot write beside the shipped config. Paths in the config are relative
 * to it, so the copy works the same.
 */
async function demoDirectory(configDir: string, workDir: string | undefined): Promise<string> {
  if (workDir === undefined && (await writable(configDir))) return configDir;
  const target = resolve(workDir ?? join(tmpdir(), `meshgate-demo-${process.getuid?.() ?? 'user'}`));
  try {
    await mkdir(target, { recursive: true });
    for (const entry of await readdir(configDir, { withFileTypes: true })) {
      if (entry.isFile() && /\.(ya?ml|json)$/.test(entry.name)) await copyFile(join(configDir, entry.name), join(target, entry.name));
    }
  } catch (error) {
    throw new Error(`cannot prepare the demo in ${target} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); pass --dir DIR with a writable directory`);
  }
  return target;
}

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(`port ${port} on ${LOOPBACK} is already in use (another demo still running?)`) : error),
    );
    server.listen(port, LOOPBACK, resolve);
  });
}

const TRY_IT = `
meshgate demo mesh is up. Try:

  # canary: ~90 % v1, ~10 % v2 (health checks are open to any caller)
  for i in $(seq 20); do curl -sk https://localhost:8443/health/ping | grep -o '"version":"v[12]"'; done | sort | uniq -c

  # header override: x-canary: true always reaches v2
  curl -sk -H 'x-canary: true' https://localhost:8443/health/ping

  # order-service, through its sidecar's Dapr API: invokes product-service (mTLS, retries, canary),
  # saves order-42 in order-store and publishes order-created on order-pubsub
  curl -sk https://localhost:8443/api/orders/42

  # ...which its subscriber route received (Subscription order-created), and the saved order
  curl -sk https://localhost:8443/api/orders/events
  curl -sk https://localhost:8443/api/orders/42/saved

  # authorization denial: only order-service may call /api/products/*; the ingress may not (403 RBAC)
  curl -sk -i https://localhost:8443/api/products/1

  # mTLS only: plaintext straight to product-service's sidecar is refused (STRICT PeerAuthentication)
  curl -sv http://127.0.0.1:15101/health/ping

  # admin of the ingress: metrics, upstream health, effective config
  curl -s http://127.0.0.1:15000/stats/prometheus | grep istio_requests_total
  curl -s http://127.0.0.1:15000/clusters

Ctrl-C stops every process.
`;

export async function demoCommand(values: Values): Promise<number> {
  // The demo apps serve from this process for as long as it runs: their young generation grows as usual.
  releaseYoungGeneration();
  let configDir: string;
  let logs: string;
  try {
    configDir = await demoDirectory(typeof values.config === 'string' ? values.config : DEMO_CONFIG, typeof values.dir === 'string' ? values.dir : undefined);
    const generated = join(configDir, '.generated');
    await prepareCertificates(generated);
    logs = join(generated, 'logs');
    await mkdir(logs, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'EACCES' || code === 'EROFS' ? `${(error as Error).message}; pass --dir DIR with a writable directory` : (error as Error).message;
    process.stderr.write(`meshgate demo: ${reason}\n`);
    return EXIT_INVALID;
  }

  const apps: http.Server[] = [];
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<number> => {
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode !== null ? undefined : new Promise((resolve) => child.once('exit', resolve)))));
    await Promise.all(apps.map((app) => new Promise((resolve) => app.close(resolve))));
    return code;
  };

  try {
    // Every port first: a stale demo holding one stops this one before anything starts, with one line.
    for (const port of [...APPS.map((app) => app.port), ...PROXIES.flatMap((proxy) => [adminPort(proxy.admin), ...proxy.ports])]) {
      await checkPortFree(LOOPBACK, port);
    }
    for (const app of APPS) {
      const server = app.create();
      apps.push(server);
      await listen(server, app.port);
    }
    for (const proxy of PROXIES) {
      const launch = { name: proxy.name, args: ['-c', configDir, ...proxy.args], admin: proxy.admin, logFile: join(logs, `${proxy.name}.log`) };
      const child = spawnProxy(launch);
      child.once('exit', (code) => {
        if (!stopping) process.stderr.write(`meshgate demo: ${proxy.name} exited with code ${code ?? 'null'}; see ${launch.logFile}\n`);
      });
      children.push(child);
      await waitProxyReady(launch, child);
      process.stdout.write(`  ${proxy.name} ready (admin http://${proxy.admin})\n`);
    }
  } catch (error) {
    process.stderr.write(`meshgate demo: ${(error as Error).message}\n`);
    return stop(EXIT_INVALID);
  }
  process.stdout.write(`${TRY_IT}Logs: ${logs}/\n`);
  return new Promise<number>((resolve) => {
    const onSignal = (): void => void stop(EXIT_OK).then(resolve);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}
