import { X509Certificate, createPrivateKey } from 'node:crypto';
import t from 'tap';
import { createRootCa, issueServerCertificate, issueWorkloadCertificate } from '../../gateway/identity/ca.js';
import { uriSubjectAltNames } from '../../gateway/identity/spiffe.js';
import { x509 } from '../helpers/x509.js';

t.test('root CA is a P-256 CA certificate allowed to sign certificates', async (t) => {
  const ca = await createRootCa({ trustDomain: 'cluster.local', validityDays: 30 });
  const cert = new x509.X509Certificate(ca.certPem);
  t.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, true);
  const usages = cert.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
  t.ok(usages & x509.KeyUsageFlags.keyCertSign, 'keyCertSign');
  const key = createPrivateKey(ca.keyPem);
  t.equal(key.asymmetricKeyType, 'ec');
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const days = (cert.notAfter.getTime() - Date.now()) / 86_400_000;
  t.ok(Math.abs(days - 30) < 0.01, `validity ${days} days`);
  t.ok(new X509Certificate(ca.certPem).verify(new X509Certificate(ca.certPem).publicKey), 'self-signed');
});

t.test('workload certificate is a SPIFFE SVID signed by the CA', async (t) => {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const issued = await issueWorkloadCertificate({ ca, trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart', validityHours: 2 });
  const nodeCert = new X509Certificate(issued.certPem);
  const caCert = new X509Certificate(ca.certPem);
  t.ok(nodeCert.verify(caCert.publicKey), 'signed by the CA');
  t.ok(nodeCert.checkIssued(caCert), 'issuer matches');
  t.same(uriSubjectAltNames(nodeCert.raw), ['spiffe://cluster.local/ns/shop/sa/cart'], 'exactly one URI SAN');
  const cert = new x509.X509Certificate(issued.certPem);
  t.same(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages, [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
  t.ok((cert.getExtension(x509.KeyUsagesExtension)?.usages ?? 0) & x509.KeyUsageFlags.digitalSignature, 'digitalSignature');
  t.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  t.equal(cert.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true, 'SAN critical because the subject is empty');
  const key = createPrivateKey(issued.keyPem);
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const hours = (cert.notAfter.getTime() - Date.now()) / 3_600_000;
  t.ok(Math.abs(hours - 2) < 0.01, `validity ${hours} hours`);
  t.ok(issued.chainPem.startsWith(issued.certPem.trim()), 'chain starts with the leaf');
  t.ok(issued.chainPem.includes(ca.certPem.trim()), 'chain carries the CA');
});

t.test('workload certificate rejects names that cannot form a SPIFFE ID', async (t) => {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  await t.rejects(
    issueWorkloadCertificate({ ca, trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'x', validityHours: 1 }),
    /invalid namespace/,
  );
  await t.rejects(
    issueWorkloadCertificate({ ca, trustDomain: 'Cluster.Local', namespace: 'a', serviceAccount: 'x', validityHours: 1 }),
    /invalid trust domain/,
  );
});

t.test('server certificate carries DNS and IP SANs and serverAuth only', async (t) => {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const issued = await issueServerCertificate({ ca, dnsNames: ['api.example.com', '*.api.example.com'], ipAddresses: ['127.0.0.1'] });
  const nodeCert = new X509Certificate(issued.certPem);
  t.equal(nodeCert.checkHost('x.api.example.com'), '*.api.example.com');
  t.equal(nodeCert.checkIP('127.0.0.1'), '127.0.0.1');
  t.same(new x509.X509Certificate(issued.certPem).getExtension(x509.ExtendedKeyUsageExtension)?.usages, [x509.ExtendedKeyUsage.serverAuth]);
  await t.rejects(issueServerCertificate({ ca, dnsNames: [] }), /at least one/);
});

t.test('an existing RSA CA (common in Istio plug-in CA setups) can issue', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { webcrypto } = await import('node:crypto');
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
  const keys = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', privateKey.export({ format: 'der', type: 'pkcs8' }), alg, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', publicKey.export({ format: 'der', type: 'spki' }), alg, true, ['verify']),
  };
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=rsa root',
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const ca = { certPem: root.toString('pem'), keyPem: privateKey.export({ format: 'pem', type: 'pkcs1' }).toString() };
  const issued = await issueWorkloadCertificate({ ca, trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b', validityHours: 1 });
  t.ok(new X509Certificate(issued.certPem).verify(new X509Certificate(ca.certPem).publicKey));
});

t.test('a non-CA certificate cannot issue', async (t) => {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const leaf = await issueServerCertificate({ ca, dnsNames: ['a.example.com'] });
  await t.rejects(issueServerCertificate({ ca: leaf, dnsNames: ['b.example.com'] }), /not a CA/);
});
