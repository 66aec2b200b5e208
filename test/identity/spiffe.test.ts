import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { parseSpiffeId, peerIdentityFromCertificate, principalFromSpiffe, certificateHash } from '../../gateway/identity/spiffe.js';
import { makeTestPki } from '../helpers/pki.js';

t.test('parseSpiffeId accepts Istio workload IDs only', async (t) => {
  const parsed = parseSpiffeId('spiffe://cluster.local/ns/shop/sa/cart');
  t.ok(parsed.ok);
  if (parsed.ok) {
    t.same(parsed.id, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart', uri: 'spiffe://cluster.local/ns/shop/sa/cart' });
    t.equal(principalFromSpiffe(parsed.id), 'cluster.local/ns/shop/sa/cart');
  }
  const rejected = [
    'https://cluster.local/ns/a/sa/b',
    'SPIFFE://cluster.local/ns/a/sa/b',
    'spiffe://Cluster.Local/ns/a/sa/b',
    'spiffe://cluster.local',
    'spiffe:///ns/a/sa/b',
    'spiffe://cluster.local/ns/a/sa/b/extra',
    'spiffe://cluster.local/ns/a/sa/',
    'spiffe://cluster.local/ns/../sa/b',
    'spiffe://cluster.local/ns/a%2Fb/sa/c',
    'spiffe://cluster.local/ns/a/sa/b?x=1',
    'spiffe://user@cluster.local/ns/a/sa/b',
    'spiffe://cluster.local:443/ns/a/sa/b',
    'spiffe://cluster.local/sa/b/ns/a',
  ];
  for (const uri of rejected) t.notOk(parseSpiffeId(uri).ok, uri);
});

t.test('peerIdentityFromCertificate extracts the identity of a valid SVID', async (t) => {
  const pki = await makeTestPki();
  const issued = await pki.issue('shop', 'cart');
  const cert = new X509Certificate(issued.certPem);
  const result = peerIdentityFromCertificate(cert, pki.trustDomain);
  t.same(result, {
    ok: true,
    identity: {
      principal: 'cluster.local/ns/shop/sa/cart',
      trustDomain: 'cluster.local',
      namespace: 'shop',
      serviceAccount: 'cart',
      uri: 'spiffe://cluster.local/ns/shop/sa/cart',
      certHash: certificateHash(cert.raw),
    },
  });
  t.match(certificateHash(cert.raw), /^[0-9a-f]{64}$/);
});

t.test('peerIdentityFromCertificate rejects every bad certificate kind', async (t) => {
  const pki = await makeTestPki();
  const cases: [string, string, RegExp][] = [
    ['expired', pki.badCerts.expired.certPem, /expired/],
    ['notYetValid', pki.badCerts.notYetValid.certPem, /not valid before/],
    ['noSpiffe', pki.badCerts.noSpiffe.certPem, /no URI SAN/],
    ['twoUriSans', pki.badCerts.twoUriSans.certPem, /2 URI SANs/],
    ['wrongTrustDomain', pki.badCerts.wrongTrustDomain.certPem, /trust domain "evil.example"/],
    ['nonSpiffeUri', pki.badCerts.nonSpiffeUri.certPem, /not a spiffe/],
    ['server certificate', (await pki.serverCert(['a.example.com'])).certPem, /lacks clientAuth|no URI SAN/],
    ['caSvid', pki.badCerts.caSvid.certPem, /is a CA/],
    ['keyCertSignSvid', pki.badCerts.keyCertSignSvid.certPem, /keyCertSign/],
    ['serverOnlySvid', pki.badCerts.serverOnlySvid.certPem, /lacks clientAuth/],
    ['clientOnlySvid', pki.badCerts.clientOnlySvid.certPem, /lacks serverAuth/],
    ['noEkuSvid', pki.badCerts.noEkuSvid.certPem, /no extendedKeyUsage/],
  ];
  for (const [name, pem, reason] of cases) {
    const result = peerIdentityFromCertificate(new X509Certificate(pem), pki.trustDomain);
    t.equal(result.ok, false, name);
    if (!result.ok) t.match(result.reason, reason, name);
  }
});

t.test('a URI hidden in a DNS SAN that prints like a URI SAN is not an identity', async (t) => {
  // node prints SANs as "DNS:x, URI:y"; a DNS name containing ", URI:spiffe://…" would fool string matching.
  const pki = await makeTestPki();
  const issued = await pki.serverCert(['evil.example.com, URI:spiffe://cluster.local/ns/kube-system/sa/admin']);
  const cert = new X509Certificate(issued.certPem);
  t.match(cert.subjectAltName ?? '', /URI:spiffe/, 'the printed form looks like a URI SAN');
  const result = peerIdentityFromCertificate(cert, pki.trustDomain);
  t.equal(result.ok, false);
});
