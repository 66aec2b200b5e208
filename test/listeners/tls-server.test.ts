import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type ConnectionOptions, type TLSSocket } from 'node:tls';
import t from 'tap';
import pino from 'pino';
import { peerIdentityFromCertificate } from '../../gateway/identity/spiffe.js';
import { clientCertHash, verifiedClientCertificate, xfccElement } from '../../gateway/listeners/client-cert.js';
import type { ListenerPlan, PlannedServer, ServerTlsPlan } from '../../gateway/listeners/plan.js';
import { createTlsServerOptions, type TlsListener } from '../../gateway/listeners/tls-server.js';
import { makeTestPki, type CertFiles } from '../helpers/pki.js';

const logger = pino({ level: 'silent' });
type Teardown = { teardown(fn: () => void): void };

function tlsPlan(cert: CertFiles, overrides: Partial<ServerTlsPlan> = {}): ServerTlsPlan {
  return {
    mode: 'SIMPLE',
    certificate: { certPath: cert.chainPath, keyPath: cert.keyPath, caPath: null },
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    cipherSuites: [],
    subjectAltNames: [],
    verifyCertificateHash: [],
    verifyCertificateSpki: [],
    insecureSkipVerify: false,
    ...overrides,
  };
}

function server(name: string, hosts: string[], tls: ServerTlsPlan): PlannedServer {
  return {
    gateway: 'istio-system/gw',
    gatewayNamespace: 'istio-system',
    serverIndex: 0,
    name,
    portName: 'https',
    hosts: hosts.map((dnsName) => ({ namespace: '*', dnsName })),
    httpsRedirect: false,
    tls,
    autoPassthrough: false,
  };
}

function listenerPlan(servers: PlannedServer[]): ListenerPlan {
  return { key: '127.0.0.1:0', bind: '127.0.0.1', port: 0, protocol: 'https', servers };
}

interface Running {
  readonly port: number;
  readonly listener: TlsListener;
  readonly accepted: TLSSocket[];
}

/** A TLS echo server: greets with the name of the Gateway server that SNI selected, then echoes. */
async function start(t: Teardown, plan: ListenerPlan, debounceMs = 50): Promise<Running> {
  const listener = await createTlsServerOptions(plan, { logger, debounceMs });
  const tlsServer = createServer(listener.options);
  listener.attach(tlsServer);
  const accepted: TLSSocket[] = [];
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    if (socket.destroyed) return;
    accepted.push(socket);
    socket.on('error', () => undefined);
    socket.write(`hello ${listener.serverFor(socket)?.name ?? '?'}\n`);
    socket.on('data', (chunk: Buffer) => socket.write(`echo ${chunk.toString()}`));
  });
  tlsServer.listen(0, '127.0.0.1');
  await once(tlsServer, 'listening');
  t.teardown(() => {
    listener.close();
    for (const socket of accepted) socket.destroy();
    tlsServer.close();
  });
  return { port: (tlsServer.address() as { port: number }).port, listener, accepted };
}

interface Outcome {
  readonly greeting: string | null;
  readonly error: string | null;
  readonly serverCert: X509Certificate | undefined;
  readonly protocol: string | null;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
  readonly socket: TLSSocket;
}

/** Connects and waits for the greeting, an error or the close; bounded by a timer. */
async function attempt(port: number, options: ConnectionOptions, keepOpen = false): Promise<Outcome> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  let session: Buffer | undefined;
  socket.on('session', (data: Buffer) => {
    session = data;
  });
  const result = await new Promise<{ greeting: string | null; error: string | null }>((resolve) => {
    const timer = setTimeout(() => resolve({ greeting: null, error: 'timeout' }), 3_000);
    const done = (value: { greeting: string | null; error: string | null }): void => {
      clearTimeout(timer);
      resolve(value);
    };
    socket.once('data', (chunk: Buffer) => done({ greeting: chunk.toString().trim(), error: null }));
    socket.once('error', (error) => done({ greeting: null, error: error.message }));
    socket.once('close', () => done({ greeting: null, error: 'closed' }));
  });
  const outcome = {
    ...result,
    serverCert: socket.getPeerX509Certificate(),
    protocol: socket.getProtocol(),
    reused: socket.isSessionReused(),
    socket,
  };
  // TLS 1.3 tickets arrive after the handshake; give them a moment before closing.
  if (result.greeting !== null) await new Promise((resolve) => setTimeout(resolve, 20));
  if (!keepOpen) socket.destroy();
  return { ...outcome, session };
}

t.test('SNI picks exact, then wildcard, then the * server; unknown SNI without * fails', async (t) => {
  const pki = await makeTestPki();
  const exact = await pki.serverCert(['a.example.com']);
  const wildcard = await pki.serverCert(['*.wild.example.com']);
  const fallback = await pki.serverCert(['default.example.com']);
  const strict = await start(t, listenerPlan([server('exact', ['a.example.com'], tlsPlan(exact)), server('wild', ['*.wild.example.com'], tlsPlan(wildcard))]));
  const ca = pki.ca.certPem;

  const a = await attempt(strict.port, { servername: 'A.example.com', ca, rejectUnauthorized: true });
  t.equal(a.greeting, 'hello exact');
  t.equal(a.serverCert?.fingerprint256, new X509Certificate(exact.certPem).fingerprint256);
  const w = await attempt(strict.port, { servername: 'x.wild.example.com', ca, rejectUnauthorized: true });
  t.equal(w.greeting, 'hello wild');
  t.equal((await attempt(strict.port, { servername: 'wild.example.com' })).greeting, null, 'wildcard does not cover its own suffix');
  t.equal((await attempt(strict.port, { servername: 'unknown.example.com' })).greeting, null, 'unknown SNI fails the handshake');

  const withDefault = await start(t, listenerPlan([server('exact', ['a.example.com'], tlsPlan(exact)), server('any', ['*'], tlsPlan(fallback))]));
  t.equal((await attempt(withDefault.port, { servername: 'unknown.example.com' })).greeting, 'hello any');
  const noSni = await attempt(withDefault.port, {});
  t.equal(noSni.greeting, 'hello any', 'a client without SNI gets the * server');
  t.equal(noSni.serverCert?.fingerprint256, new X509Certificate(fallback.certPem).fingerprint256);
});

t.test('MUTUAL: verified mesh client accepted and identified; no cert or foreign CA refused', async (t) => {
  const pki = await makeTestPki();
  const serverCert = await pki.serverCert(['mtls.example.com']);
  const plan = listenerPlan([server('mtls', ['mtls.example.com'], tlsPlan(serverCert, { mode: 'MUTUAL', certificate: { certPath: serverCert.chainPath, keyPath: serverCert.keyPath, caPath: pki.ca.certPath } }))]);
  const running = await start(t, plan);
  const client = await pki.issue('shop', 'web');

  const good = await attempt(running.port, { servername: 'mtls.example.com', cert: client.chainPem, key: client.keyPem });
  t.equal(good.greeting, 'hello mtls');
  const accepted = running.accepted.at(-1) as TLSSocket;
  const peer = verifiedClientCertificate(accepted);
  t.ok(peer, 'server sees a verified client certificate');
  if (peer !== null) {
    const identity = peerIdentityFromCertificate(peer, pki.trustDomain);
    t.match(identity, { ok: true, identity: { principal: 'cluster.local/ns/shop/sa/web' } });
    t.equal(clientCertHash(peer), clientCertHash(new X509Certificate(client.certPem)));
    t.match(xfccElement(peer, 'spiffe://cluster.local/ns/istio-system/sa/gw'), /^By=spiffe:\/\/cluster\.local\/ns\/istio-system\/sa\/gw;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web$/);
  }

  t.equal((await attempt(running.port, { servername: 'mtls.example.com' })).greeting, null, 'no client certificate');
  const foreign = pki.badCerts.otherCa;
  t.equal((await attempt(running.port, { servername: 'mtls.example.com', cert: foreign.chainPem, key: foreign.keyPem })).greeting, null, 'client from another CA');
});

t.test('MUTUAL next to SIMPLE on one port, with certificate pinning', async (t) => {
  const pki = await makeTestPki();
  const serverCert = await pki.serverCert(['*.example.com']);
  const client = await pki.issue('shop', 'web');
  const other = await pki.issue('shop', 'other');
  const mutual = (hash: string[]) =>
    tlsPlan(serverCert, { mode: 'MUTUAL', certificate: { certPath: serverCert.chainPath, keyPath: serverCert.keyPath, caPath: pki.ca.certPath }, verifyCertificateHash: hash });
  const running = await start(t, listenerPlan([server('public', ['public.example.com'], tlsPlan(serverCert)), server('pinned', ['pinned.example.com'], mutual([clientCertHash(new X509Certificate(client.certPem))]))]));
  t.equal((await attempt(running.port, { servername: 'public.example.com' })).greeting, 'hello public', 'SIMPLE needs no client certificate');
  t.equal((await attempt(running.port, { servername: 'pinned.example.com' })).greeting, null, 'MUTUAL still requires one');
  t.equal((await attempt(running.port, { servername: 'pinned.example.com', cert: client.chainPem, key: client.keyPem })).greeting, 'hello pinned');
  t.equal((await attempt(running.port, { servername: 'pinned.example.com', cert: other.chainPem, key: other.keyPem })).greeting, null, 'valid but not pinned');
});

t.test('minProtocolVersion TLSv1.3 refuses a TLS 1.2-only client', async (t) => {
  const pki = await makeTestPki();
  const cert = await pki.serverCert(['v13.example.com']);
  const running = await start(t, listenerPlan([server('v13', ['*'], tlsPlan(cert, { minVersion: 'TLSv1.3' }))]));
  t.equal((await attempt(running.port, { servername: 'v13.example.com', maxVersion: 'TLSv1.2' })).greeting, null);
  const modern = await attempt(running.port, { servername: 'v13.example.com' });
  t.equal(modern.greeting, 'hello v13');
  t.equal(modern.protocol, 'TLSv1.3');
});

t.test('per-server minimum on a shared port is enforced after the handshake', async (t) => {
  const pki = await makeTestPki();
  const cert = await pki.serverCert(['*.example.com']);
  const running = await start(t, listenerPlan([server('old', ['old.example.com'], tlsPlan(cert)), server('new', ['new.example.com'], tlsPlan(cert, { minVersion: 'TLSv1.3' }))]));
  t.equal((await attempt(running.port, { servername: 'old.example.com', maxVersion: 'TLSv1.2' })).greeting, 'hello old');
  t.equal((await attempt(running.port, { servername: 'new.example.com', maxVersion: 'TLSv1.2' })).greeting, null);
});

t.test('rotation: new connections get the new certificate, an open connection keeps working', async (t) => {
  const pki = await makeTestPki();
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-listener-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const certPath = join(dir, 'tls.crt');
  const keyPath = join(dir, 'tls.key');
  const first = await pki.serverCert(['rotate.example.com']);
  copyFileSync(first.chainPath, certPath);
  copyFileSync(first.keyPath, keyPath);
  const running = await start(t, listenerPlan([server('rot', ['rotate.example.com'], tlsPlan(first, { certificate: { certPath, keyPath, caPath: null } }))]));

  const kept = await attempt(running.port, { servername: 'rotate.example.com' }, true);
  t.teardown(() => kept.socket.destroy());
  t.equal(kept.serverCert?.fingerprint256, new X509Certificate(first.certPem).fingerprint256);

  const second = await pki.serverCert(['rotate.example.com']);
  writeFileSync(`${keyPath}.tmp`, second.keyPem);
  writeFileSync(`${certPath}.tmp`, second.chainPem);
  renameSync(`${keyPath}.tmp`, keyPath);
  renameSync(`${certPath}.tmp`, certPath);
  const wanted = new X509Certificate(second.certPem).fingerprint256;
  let seen: string | undefined;
  for (let tries = 0; tries < 40 && seen !== wanted; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    seen = (await attempt(running.port, { servername: 'rotate.example.com' })).serverCert?.fingerprint256;
  }
  t.equal(seen, wanted, 'new connections present the new certificate');

  kept.socket.write('ping');
  const [reply] = (await once(kept.socket, 'data')) as [Buffer];
  t.equal(reply.toString(), 'echo ping', 'the connection opened before the rotation still works');
});

t.test('a missing certificate file at start is an error naming the path', async (t) => {
  const pki = await makeTestPki();
  const cert = await pki.serverCert(['x.example.com']);
  const missing = join(pki.dir, 'missing.key');
  await t.rejects(createTlsServerOptions(listenerPlan([server('x', ['*'], tlsPlan(cert, { certificate: { certPath: cert.chainPath, keyPath: missing, caPath: null } }))]), { logger }), {
    message: new RegExp(`${missing}.*ENOENT`),
  });
});

t.test('session resumption: a client presenting its ticket resumes', async (t) => {
  const pki = await makeTestPki();
  const cert = await pki.serverCert(['resume.example.com']);
  const client = await pki.issue('shop', 'web');
  const plan = listenerPlan([server('resume', ['resume.example.com'], tlsPlan(cert, { mode: 'MUTUAL', certificate: { certPath: cert.chainPath, keyPath: cert.keyPath, caPath: pki.ca.certPath } }))]);
  const running = await start(t, plan);
  const options = { servername: 'resume.example.com', cert: client.chainPem, key: client.keyPem, ca: pki.ca.certPem, rejectUnauthorized: true };
  const first = await attempt(running.port, options);
  t.equal(first.greeting, 'hello resume');
  t.equal(first.reused, false);
  t.ok(first.session, 'server issued a session ticket');
  const second = await attempt(running.port, { ...options, session: first.session });
  t.equal(second.greeting, 'hello resume');
  t.equal(second.reused, true, 'handshake resumed');
});
