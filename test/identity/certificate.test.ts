/**
 * gateway/identity/certificate.ts reads certificates with a hand-written DER reader; @peculiar/x509 (an
 * independent ASN.1 implementation, the parser meshgate used before) is the reference here: the same
 * certificates must yield the same SANs, validity and printed subject (XFCC `Subject`).
 */
import { X509Certificate, webcrypto } from 'node:crypto';
import t from 'tap';
import { createRootCa, issueServerCertificate } from '../../gateway/identity/ca.js';
import { formatName, parseCertificate } from '../../gateway/identity/certificate.js';
import { peerIdentityFromCertificate } from '../../gateway/identity/spiffe.js';
import { certificateNames } from '../../gateway/listeners/client-cert.js';
import { x509 } from '../helpers/x509.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface CraftOptions {
  readonly name: string;
  readonly sans?: ConstructorParameters<typeof x509.SubjectAlternativeNameExtension>[0];
  readonly extraExtensions?: InstanceType<typeof x509.Extension>[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

async function craft(options: CraftOptions): Promise<X509Certificate> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: options.name,
    keys,
    signingAlgorithm: EC,
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 3_600_000),
    extensions: [
      ...(options.sans === undefined ? [] : [new x509.SubjectAlternativeNameExtension(options.sans, false)]),
      ...(options.extraExtensions ?? []),
    ],
  });
  return new X509Certificate(certificate.toString('pem'));
}

function reference(cert: X509Certificate): { subject: string; names: { type: string; value: string }[]; notBefore: Date; notAfter: Date } {
  const parsed = new x509.X509Certificate(cert.raw);
  const names = parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  return { subject: parsed.subject, names: names.map(({ type, value }) => ({ type, value })), notBefore: parsed.notBefore, notAfter: parsed.notAfter };
}

t.test('subjects print as @peculiar/x509 prints them, escaping included', async (t) => {
  const subjects = [
    'CN=plain',
    'O=cluster.local, CN=meshgate root CA',
    'CN=a\\, b',
    'CN=\\#hash, O=trailing\\ ',
    'CN=quote\\"d+OU=multi\\+valued',
    'CN=semi\\;colon, OU=less\\<than\\>greater, O=back\\\\slash',
    'CN=Zoë Ünïcode, E=someone@example.com, DC=example, C=FR, ST=Île, L=Paris, SN=Doe, G=Jane, T=Dr, I=J',
  ];
  for (const name of subjects) {
    const cert = await craft({ name });
    t.equal(formatName(parseCertificate(cert.raw).subject), reference(cert).subject, name);
  }
});

t.test('subjectAltName entries and validity match the reference parser', async (t) => {
  const cert = await craft({
    name: 'CN=sans',
    sans: [
      { type: 'url', value: 'spiffe://cluster.local/ns/a/sa/b' },
      { type: 'dns', value: 'a.example.com' },
      { type: 'dns', value: '*.example.com' },
      { type: 'ip', value: '10.1.2.3' },
      { type: 'ip', value: '2001:db8::1' },
      { type: 'ip', value: '::1' },
      { type: 'ip', value: 'fe80:0:0:1:0:0:0:5' },
      { type: 'ip', value: '1:2:3:4:5:6:7:8' },
      { type: 'email', value: 'ops@example.com' },
      { type: 'url', value: 'https://example.com/x' },
    ],
    // After 2049 the validity is a GeneralizedTime (RFC 5280 §4.1.2.5).
    notAfter: new Date(Date.UTC(2051, 0, 2, 3, 4, 5)),
  });
  const expected = reference(cert);
  const names = certificateNames(cert);
  const of = (type: string): string[] => expected.names.filter((name) => name.type === type).map((name) => name.value);
  t.same(names.uris, of('url'));
  t.same(names.dnsNames, of('dns'));
  t.same(names.ipAddresses, of('ip'));
  t.same(names.emails, of('email'));
  t.same(names.ipAddresses, ['10.1.2.3', '2001:db8::1', '::1', 'fe80:0:0:1::5', '1:2:3:4:5:6:7:8']);
  const parsed = parseCertificate(cert.raw);
  t.equal(parsed.notBefore.getTime(), expected.notBefore.getTime(), 'notBefore (UTCTime)');
  t.equal(parsed.notAfter.toISOString(), '2051-01-02T03:04:05.000Z', 'notAfter (GeneralizedTime)');
});

t.test('a certificate with two subjectAltName extensions has no identity', async (t) => {
  const sans = (uri: string): InstanceType<typeof x509.Extension> => new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], false);
  const cert = await craft({ name: 'CN=twice', extraExtensions: [sans('spiffe://cluster.local/ns/a/sa/one'), sans('spiffe://cluster.local/ns/a/sa/two')] });
  t.throws(() => parseCertificate(cert.raw), /repeats extension 2\.5\.29\.17/);
  const result = peerIdentityFromCertificate(cert, 'cluster.local');
  t.notOk(result.ok);
  if (!result.ok) t.match(result.reason, /cannot be parsed/);
});

t.test('malformed DER is refused', async (t) => {
  const cert = await craft({ name: 'CN=ok' });
  const der = new Uint8Array(cert.raw);
  t.throws(() => parseCertificate(der.subarray(0, der.length - 1)), /DER/, 'truncated');
  t.throws(() => parseCertificate(Buffer.concat([der, Buffer.from([0])])), /trailing data/, 'trailing byte');
  t.throws(() => parseCertificate(Buffer.from([0x30, 0x80, 0x00, 0x00])), /length form/, 'indefinite length');
  t.throws(() => parseCertificate(Buffer.from([0x04, 0x00])), /Certificate expected/, 'not a SEQUENCE');
});

t.test('IP SANs that ca.ts writes read back the same through the reference parser', async (t) => {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const addresses = ['127.0.0.1', '::1', '2001:db8::5', 'fe80::1:0:0:2'];
  const issued = await issueServerCertificate({ ca, dnsNames: ['a.example.com'], ipAddresses: addresses });
  const cert = new X509Certificate(issued.certPem);
  t.same(reference(cert).names.filter((name) => name.type === 'ip').map((name) => name.value), addresses);
  t.same(certificateNames(cert).ipAddresses, addresses);
  t.equal(certificateNames(cert).subject, 'CN=a.example.com');
});
