import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import t from 'tap';
import pino from 'pino';
import { CertificateFileError, CertificateStore } from '../../gateway/identity/cert-store.js';
import type { PeerIdentity } from '../../gateway/pipeline/types.js';
import { makeTestPki, type CertFiles } from '../helpers/pki.js';

const logger = pino({ level: 'silent' });

function workloadDir(t: { teardown(fn: () => void): void }, ca: string, issued: CertFiles): { dir: string; files: { certChain: string; privateKey: string; rootCert: string } } {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = { certChain: join(dir, 'cert-chain.pem'), privateKey: join(dir, 'key.pem'), rootCert: join(dir, 'root-cert.pem') };
  copyFileSync(issued.chainPath, files.certChain);
  copyFileSync(issued.keyPath, files.privateKey);
  copyFileSync(ca, files.rootCert);
  return { dir, files };
}

/** Editors and secret mounts replace files by rename; do the same so the directory watch sees it. */
function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

/** The watchers and renewal timers under test are unref'd, so this timer is what keeps the process alive while waiting. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('a missing file at start is an error naming the path', async (t) => {
  const pki = await makeTestPki();
  const issued = await pki.issue('shop', 'cart');
  const missing = join(pki.dir, 'does-not-exist.pem');
  const error = await CertificateStore.fromFiles({
    files: { certChain: issued.chainPath, privateKey: missing, rootCert: pki.ca.certPath },
    trustDomain: pki.trustDomain,
    logger,
  }).catch((caught: unknown) => caught);
  t.ok(error instanceof CertificateFileError);
  t.match((error as Error).message, missing);
  t.match((error as Error).message, /ENOENT/);
});

t.test('material that does not belong together is refused at start', async (t) => {
  const pki = await makeTestPki();
  const cart = await pki.issue('shop', 'cart');
  const other = await pki.issue('shop', 'other');
  const open = (certChain: string, privateKey: string, rootCert: string) =>
    CertificateStore.fromFiles({ files: { certChain, privateKey, rootCert }, trustDomain: pki.trustDomain, logger });
  await t.rejects(open(cart.chainPath, other.keyPath, pki.ca.certPath), /private key does not match/);
  await t.rejects(open(cart.chainPath, cart.keyPath, pki.badCerts.otherCaRoot.certPath), /not signed by the root/);
  await t.rejects(open(pki.badCerts.wrongTrustDomain.chainPath, pki.badCerts.wrongTrustDomain.keyPath, pki.ca.certPath), /trust domain/);
});

t.test('two stores complete an mTLS handshake with their contexts and see each other', async (t) => {
  const pki = await makeTestPki();
  const serverStore = await CertificateStore.fromFiles({ files: workloadDir(t, pki.ca.certPath, await pki.issue('shop', 'cart')).files, trustDomain: pki.trustDomain, logger });
  const clientStore = await CertificateStore.fromFiles({ files: workloadDir(t, pki.ca.certPath, await pki.issue('shop', 'web')).files, trustDomain: pki.trustDomain, logger });
  t.teardown(() => { serverStore.close(); clientStore.close(); });
  t.equal(serverStore.identity.principal, 'cluster.local/ns/shop/sa/cart');
  t.ok(serverStore.expiresAt.getTime() > Date.now());
  t.equal(serverStore.trustBundle.length, 1);

  const seenByServer: string[] = [];
  const server = createServer({ ...serverStore.tlsOptions(), requestCert: true, rejectUnauthorized: true }, (socket) => {
    const peer = socket.getPeerX509Certificate();
    seenByServer.push(peer === undefined ? 'none' : serverStore.verifyPeer(peer) ?? 'ok');
    socket.end('hi');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };

  const socket: TLSSocket = connect({
    host: '127.0.0.1',
    port,
    secureContext: clientStore.clientContext(),
    rejectUnauthorized: true,
    // mesh peers are verified by SPIFFE identity, not by host name
    checkServerIdentity: () => undefined,
  });
  await once(socket, 'secureConnect');
  const serverCert = socket.getPeerX509Certificate();
  t.ok(serverCert);
  if (serverCert !== undefined) {
    t.equal(clientStore.verifyPeer(serverCert, ['cluster.local/ns/shop/sa/cart']), null);
    t.match(clientStore.verifyPeer(serverCert, ['cluster.local/ns/shop/sa/other']) ?? '', /not one of the expected/);
  }
  socket.resume();
  await once(socket, 'end');
  t.same(seenByServer, ['ok']);
});

t.test('rotation: rewritten files are picked up; invalid files are refused and the old material kept', async (t) => {
  const pki = await makeTestPki();
  const { files } = workloadDir(t, pki.ca.certPath, await pki.issue('shop', 'cart'));
  const store = await CertificateStore.fromFiles({ files, trustDomain: pki.trustDomain, logger, debounceMs: 50 });
  t.teardown(() => store.close());
  const before = store.identity.certHash;
  const contextBefore = store.serverContext();

  const next = await pki.issue('shop', 'cart');
  const rotated = once(store, 'rotated') as Promise<[PeerIdentity]>;
  replaceFile(files.privateKey, next.keyPem);
  replaceFile(files.certChain, next.chainPem);
  const [identity] = await withTimeout(rotated, 5_000, 'rotation');
  t.not(identity.certHash, before);
  t.equal(store.identity.certHash, identity.certHash);
  t.not(store.serverContext(), contextBefore, 'a new context is built once per rotation');

  const rejected = once(store, 'rejected') as Promise<[string]>;
  replaceFile(files.privateKey, 'not a key');
  const [reason] = await withTimeout(rejected, 5_000, 'refusal');
  t.ok(reason.length > 0);
  t.equal(store.identity.certHash, identity.certHash, 'previous material still in service');
});

t.test('self-issued store renews its certificate before expiry', async (t) => {
  const pki = await makeTestPki();
  const store = await CertificateStore.selfIssued({
    caCertPath: pki.ca.certPath,
    caKeyPath: pki.ca.keyPath,
    trustDomain: pki.trustDomain,
    namespace: 'dev',
    serviceAccount: 'local',
    // 3.6 s lifetime: renewal is due after ~1.8 s
    ttlHours: 0.001,
    logger,
  });
  t.teardown(() => store.close());
  t.equal(store.identity.principal, 'cluster.local/ns/dev/sa/local');
  t.equal(store.trustBundlePem, pki.ca.certPem);
  const first = store.identity.certHash;
  const [renewed] = (await withTimeout(once(store, 'rotated'), 6_000, 'renewal')) as [PeerIdentity];
  t.not(renewed.certHash, first);
  t.ok(store.expiresAt.getTime() > Date.now());
});

t.test('self-issued store names a missing CA file', async (t) => {
  await t.rejects(
    CertificateStore.selfIssued({ caCertPath: '/nonexistent/ca.crt', caKeyPath: '/nonexistent/ca.key', trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b', ttlHours: 1, logger }),
    /\/nonexistent\/ca\.(crt|key)/,
  );
});

t.test('ephemeral store needs no files', async (t) => {
  const store = await CertificateStore.ephemeral({ trustDomain: 'example.org', namespace: 'a', serviceAccount: 'b', ttlHours: 24, logger });
  t.teardown(() => store.close());
  t.equal(store.identity.uri, 'spiffe://example.org/ns/a/sa/b');
});
