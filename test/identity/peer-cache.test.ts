import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { checkPeerCertificate, presentedCertificate } from '../../gateway/identity/peer.js';
import type { PresentedCertificate } from '../../gateway/identity/peer.js';
import { peerIdentityFromCertificate } from '../../gateway/identity/spiffe.js';
import { makeTestPki } from '../helpers/pki.js';

t.test('a repeated certificate gets the same verdict as a full check, per trust domain', async (t) => {
  const pki = await makeTestPki();
  const issued = await pki.issue('shop', 'cart');
  const cert = new X509Certificate(issued.certPem);
  const first = checkPeerCertificate(cert, pki.trustDomain);
  t.same(first, peerIdentityFromCertificate(cert, pki.trustDomain));
  t.ok(first.ok);
  t.equal(checkPeerCertificate(new X509Certificate(issued.certPem), pki.trustDomain), first, 'second connection: the remembered result');
  const foreign = checkPeerCertificate(cert, 'other.example');
  t.notOk(foreign.ok, 'a trust domain change is not answered from the cache');
});

t.test('certificates outside their validity window are refused with the reason, on every check', async (t) => {
  const pki = await makeTestPki();
  for (const [name, pem, reason] of [
    ['expired', pki.badCerts.expired.certPem, /expired/],
    ['notYetValid', pki.badCerts.notYetValid.certPem, /not valid before/],
  ] as const) {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const result = checkPeerCertificate(new X509Certificate(pem), pki.trustDomain);
      t.match(result.ok ? '' : result.reason, reason, `${name}, check ${attempt + 1}`);
    }
  }
});

t.test('a refused certificate stays refused when asked again', async (t) => {
  const pki = await makeTestPki();
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const result = checkPeerCertificate(new X509Certificate(pki.badCerts.wrongTrustDomain.certPem), pki.trustDomain);
    t.match(result.ok ? '' : result.reason, /trust domain "evil.example"/);
  }
});

t.test('the presented certificate is the leaf, also when the client sends its chain, and a resumed session still has it', async (t) => {
  const pki = await makeTestPki();
  const client = await pki.issue('shop', 'cart');
  const server = await pki.serverCert(['localhost']);
  const [ca, chain, key, serverChain, serverKey] = await Promise.all([client.chainPath, client.chainPath, client.keyPath, server.chainPath, server.keyPath].map((path, index) => readFile(index === 0 ? pki.ca.certPath : path)));
  const seen: (PresentedCertificate | undefined)[] = [];
  const listener = tls.createServer({ cert: serverChain, key: serverKey, ca, requestCert: true, rejectUnauthorized: false }, (socket) => {
    seen.push(presentedCertificate(socket));
    socket.end('bye');
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => listener.close());
  const { port } = listener.address() as AddressInfo;
  const connectOnce = (options: tls.ConnectionOptions): Promise<{ ticket: Buffer | undefined; reused: boolean }> =>
    new Promise((resolve, reject) => {
      let ticket: Buffer | undefined;
      let reused = false;
      const socket = tls.connect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined, ...options });
      socket.on('session', (session: Buffer) => (ticket = session));
      socket.once('secureConnect', () => (reused = socket.isSessionReused()));
      socket.resume();
      socket.once('error', reject);
      socket.once('close', () => resolve({ ticket, reused }));
    });
  t.ok(chain.toString().split('BEGIN CERTIFICATE').length > 2, 'the client sends more than its leaf');
  const { ticket } = await connectOnce({ cert: chain, key });
  t.ok((await connectOnce({ cert: chain, key, session: ticket })).reused, 'the second connection resumed');
  await connectOnce({});
  const leaf = new X509Certificate(client.certPem);
  t.equal(seen[0]?.fingerprint256, leaf.fingerprint256, 'full handshake: the leaf');
  t.same(seen[0]?.raw, leaf.raw);
  t.equal(seen[1]?.fingerprint256, leaf.fingerprint256, 'resumed session: the same leaf');
  t.ok(seen[1] instanceof X509Certificate, "resumed session: read without building node's whole certificate object (~5x dearer)");
  t.equal(seen[2], undefined, 'no client certificate: none');
  t.ok(checkPeerCertificate(seen[0] as PresentedCertificate, pki.trustDomain).ok, 'and it checks as the mesh identity it is');
});
