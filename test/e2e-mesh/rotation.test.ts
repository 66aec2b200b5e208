/**
 * A sidecar reading its identity from files (as SPIRE or cert-manager's csi-driver-spiffe provide them)
 * picks up rotated files without a restart: new connections get the new certificate, /certs shows it,
 * and a connection opened before the rotation keeps working. Session tickets issued before the rotation
 * no longer resume: the ticket keys rotate with the certificate and trust bundle.
 */
import t from 'tap';
import https from 'node:https';
import { copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';

const pki = await makeTestPki();
const app = await startUpstream(undefined, 'app');
const inbound = await freePort();
const admin = await freePort();
const first = await pki.issue('my-app', 'product-service', { validityHours: 24 });
const config = await configDir('');
const certChain = join(config.dir, 'cert-chain.pem');
const privateKey = join(config.dir, 'key.pem');
const rootCert = join(config.dir, 'root-cert.pem');
await copyFile(first.chainPath, certChain);
await copyFile(first.keyPath, privateKey);
await copyFile(pki.ca.certPath, rootCert);
await config.write(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${admin}
  accessLog: { enabled: false }
  certificates: { certChain: ${certChain}, privateKey: ${privateKey}, rootCert: ${rootCert} }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: product, namespace: my-app }
spec: { address: 127.0.0.1, labels: { app: product-service }, serviceAccount: product-service }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: product, namespace: my-app }
spec:
  workloadSelector: { labels: { app: product-service } }
  ingress: [{ port: { number: ${inbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${app.port}" }]
`);
const sidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/product' });
t.teardown(async () => {
  await sidecar.stop();
  await app.close();
  await config.remove();
});

const client = await pki.issue('my-app', 'order-service');
const clientOptions = {
  host: '127.0.0.1',
  port: inbound,
  ca: await readFile(pki.ca.certPath),
  cert: await readFile(client.chainPath),
  key: await readFile(client.keyPath),
  checkServerIdentity: () => undefined,
};

function fetchOver(agent: https.Agent): Promise<{ status: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get({ ...clientOptions, path: '/health', agent }, (response) => {
      const peer = (response.socket as TLSSocket).getPeerX509Certificate();
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, serial: peer?.serialNumber ?? '' }));
    });
    request.on('error', reject);
  });
}

async function certsExpiry(): Promise<string> {
  const body = (await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as { expiresAt: string };
  return body.expiresAt;
}

/** One raw TLS connection carrying HTTP/1.1 requests one after the other, so "the same connection" is certain. */
async function openConnection(): Promise<{ socket: TLSSocket; get(path: string): Promise<string> }> {
  const socket = tls.connect(clientOptions);
  await once(socket, 'secureConnect');
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (buffered += chunk));
  return {
    socket,
    async get(path: string): Promise<string> {
      buffered = '';
      socket.write(`GET ${path} HTTP/1.1\r\nhost: product\r\n\r\n`);
      for (let waited = 0; waited < 750 && !/\r\n\r\n[\s\S]*\}/.test(buffered); waited++) await new Promise((resolve) => setTimeout(resolve, 20));
      return buffered.split('\r\n')[0] ?? '';
    },
  };
}

/** A connection that offers `session`, kept until the server's tickets arrived: whether it resumed, and the last ticket. */
async function resumeWith(session: Buffer | undefined): Promise<{ reused: boolean; ticket: Buffer | undefined }> {
  const socket = tls.connect({ ...clientOptions, ...(session === undefined ? {} : { session }) });
  let ticket: Buffer | undefined;
  socket.on('session', (received: Buffer) => (ticket = received));
  await once(socket, 'secureConnect');
  const reused = socket.isSessionReused();
  // Tickets follow the handshake; the response to a request is certain to come after them.
  socket.write('GET /health HTTP/1.1\r\nhost: product\r\nconnection: close\r\n\r\n');
  socket.resume();
  await once(socket, 'close');
  return { reused, ticket };
}

t.test('rotated certificate files are served to new connections; old connections keep working', async (t) => {
  const beforeRotation = await resumeWith(undefined);
  t.ok(beforeRotation.ticket, 'a ticket was issued before the rotation');
  t.ok((await resumeWith(beforeRotation.ticket)).reused, 'and it resumes while the certificate is unchanged');
  const early = await openConnection();
  t.teardown(() => early.socket.destroy());
  t.equal(await early.get('/health'), 'HTTP/1.1 200 OK');
  t.equal(early.socket.getPeerX509Certificate()?.serialNumber, new X509Certificate(await readFile(first.certPath)).serialNumber);
  const expiryBefore = await certsExpiry();

  const second = await pki.issue('my-app', 'product-service', { validityHours: 48 });
  // Write-then-rename, as Kubernetes and editors do.
  await writeFile(`${certChain}.tmp`, await readFile(second.chainPath));
  await writeFile(`${privateKey}.tmp`, await readFile(second.keyPath));
  await rename(`${privateKey}.tmp`, privateKey);
  await rename(`${certChain}.tmp`, certChain);

  const expected = new X509Certificate(await readFile(second.certPath)).serialNumber;
  let fresh = { status: 0, serial: '' };
  for (let attempt = 0; attempt < 200 && fresh.serial !== expected; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const agent = new https.Agent({ keepAlive: false });
    fresh = await fetchOver(agent);
  }
  t.equal(fresh.serial, expected, 'a new connection gets the rotated certificate');
  t.not(await certsExpiry(), expiryBefore, '/certs shows the new expiry');
  t.equal(await early.get('/health'), 'HTTP/1.1 200 OK', 'the connection opened before the rotation still works');
  t.notOk(early.socket.destroyed, 'and it is still open');
  const afterRotation = await resumeWith(beforeRotation.ticket);
  t.notOk(afterRotation.reused, 'a ticket from before the rotation does not resume');
  t.ok((await resumeWith(afterRotation.ticket)).reused, 'a ticket from after it does');
});
