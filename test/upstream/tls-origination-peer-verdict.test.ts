import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import t from 'tap';
import type { Test } from 'tap';
import { peerIdentityFromCertificate } from '../../gateway/identity/spiffe.js';
import { buildUpstreamConnector } from '../../gateway/upstream/tls-origination.js';
import type { MeshIdentityProvider } from '../../gateway/upstream/tls-origination.js';
import { makeTestPki } from '../helpers/pki.js';

const SERVER_URI = 'spiffe://cluster.local/ns/shop/sa/cart';

async function startMeshServer(t: Test, chainPem: string, keyPem: string): Promise<number> {
  const server = tls.createServer({ cert: chainPem, key: keyPem }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function connectOnce(connect: ReturnType<typeof buildUpstreamConnector>['connect'], port: number): Promise<Error | null> {
  return new Promise((resolve) => {
    connect({ hostname: '127.0.0.1', host: '127.0.0.1', port: String(port), protocol: 'https:', servername: '' }, (error: Error | null, socket: Socket | null) => {
      socket?.destroy();
      resolve(error);
    });
  });
}

t.test('ISTIO_MUTUAL checks an endpoint certificate once, then every pooled connection reuses the verdict', async (t) => {
  const pki = await makeTestPki();
  const server = await pki.issue('shop', 'cart');
  const client = await pki.issue('shop', 'frontend');
  const port = await startMeshServer(t, server.chainPem, server.keyPem);
  let checks = 0;
  const identity: MeshIdentityProvider = {
    secureContext: () => tls.createSecureContext({ ca: pki.ca.certPem, cert: client.chainPem, key: client.keyPem }),
    verifyPeer(cert: PeerCertificate) {
      checks += 1;
      const result = peerIdentityFromCertificate(new X509Certificate(cert.raw), pki.trustDomain);
      return result.ok ? { ok: true as const, uri: result.identity.uri } : result;
    },
  };
  const input = {
    tls: { mode: 'ISTIO_MUTUAL', explicit: true, caCertificates: '', clientCertificate: '', privateKey: '', sni: '', subjectAltNames: [], insecureSkipVerify: false },
    serviceSubjectAltNames: [],
    istioSni: 'outbound_.443_._.cart.shop.svc.cluster.local',
    identity,
    connectTimeoutMs: 2000,
  } as const;
  const accepted = buildUpstreamConnector({ ...input, expectedIdentities: [SERVER_URI] });
  for (let attempt = 0; attempt < 3; attempt += 1) t.equal(await connectOnce(accepted.connect, port), null, `connection ${attempt + 1}`);
  t.equal(checks, 1, 'one certificate check for three connections');

  const refused = buildUpstreamConnector({ ...input, expectedIdentities: ['spiffe://cluster.local/ns/shop/sa/other'] });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    t.match((await connectOnce(refused.connect, port))?.message, /is not one of/, `secure naming still refuses, connection ${attempt + 1}`);
  }
});
