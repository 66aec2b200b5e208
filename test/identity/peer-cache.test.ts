import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { checkPeerCertificate } from '../../gateway/proxy/peer.js';
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
