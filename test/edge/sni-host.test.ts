/**
 * Issue 18, class 2: SNI / Host confusion on a TLS listener (RFC 9110 §15.5.20 421 Misdirected Request;
 * RFC 9113 §9.1.1 connection reuse). One HTTPS port serves a SIMPLE server, a MUTUAL server and a `*`
 * default server. Real TLS handshakes pick a server by SNI; a request whose Host/:authority belongs to
 * another server of the port gets 421 and never reaches that server's routes (nor any upstream), with
 * no SNI at all too, and on a reused HTTP/2 connection.
 */
import t from 'tap';
import http2 from 'node:http2';
import tls from 'node:tls';
import { startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePorts, gatewayYaml, httpsRequest, meshConfigYaml, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const pki = await makeTestPki();
const ca = pki.ca.certPem;
const publicCert = await pki.serverCert(['public.example.com']);
const secureCert = await pki.serverCert(['secure.example.com']);
const defaultCert = await pki.serverCert(['default.example.com']);
const client = await pki.issue('default', 'client');

const app = await startUpstream();
t.teardown(() => app.close());
const [admin = 0, port = 0] = await freePorts(2);

const server = (host: string, files: { certPath: string; keyPath: string }, mode: 'SIMPLE' | 'MUTUAL'): string =>
  `    - port: {number: ${port}, name: https-${host.split('.')[0] ?? 'x'}, protocol: HTTPS}
      hosts: ["${host}"]
      tls:
        mode: ${mode}
        serverCertificate: ${files.certPath}
        privateKey: ${files.keyPath}
${mode === 'MUTUAL' ? `        caCertificates: ${pki.ca.certPath}\n` : ''}`;

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', [server('public.example.com', publicCert, 'SIMPLE'), server('secure.example.com', secureCert, 'MUTUAL'), server('*', defaultCert, 'SIMPLE')].join('')),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    virtualServiceYaml('app', ['public.example.com', 'secure.example.com', 'other.example.com'], 'edge', '    - route:\n        - destination: {host: app.internal}\n'),
  ].join('\n'),
);

function reached(host: string, since: number): boolean {
  return app.received.slice(since).some((request) => request.headers.host === host);
}

t.test('class 2: SNI public (SIMPLE) + Host of the MUTUAL server → 421, the MUTUAL routes are never reached', async (t) => {
  const since = app.received.length;
  const misdirected = await httpsRequest(port, '/private', { servername: 'public.example.com', host: 'secure.example.com', ca });
  t.equal(misdirected.status, 421);
  t.equal(misdirected.headers['x-meshgate-reason'], 'misdirected_request_sni_host_mismatch');
  t.notOk(reached('secure.example.com', since), 'nothing reached the upstream for secure.example.com');
  const withPort = await httpsRequest(port, '/private', { servername: 'public.example.com', host: `secure.example.com:${port}`, ca });
  t.equal(withPort.status, 421, 'a port in Host changes nothing');
  const upper = await httpsRequest(port, '/private', { servername: 'public.example.com', host: 'SECURE.example.com', ca });
  t.equal(upper.status, 421, 'nor does case');
  const matching = await httpsRequest(port, '/ok', { servername: 'public.example.com', host: 'public.example.com', ca });
  t.equal(matching.status, 200, 'the SNI server’s own host is served');
});

t.test('class 2: the MUTUAL server itself is served to a client that did the mTLS handshake for it', async (t) => {
  const reply = await httpsRequest(port, '/private', { servername: 'secure.example.com', ca, cert: client.certPem, key: client.keyPem });
  t.equal(reply.status, 200);
  const across = await httpsRequest(port, '/x', { servername: 'secure.example.com', host: 'public.example.com', ca, cert: client.certPem, key: client.keyPem });
  t.equal(across.status, 421, 'and the other direction is misdirected too');
});

/** One HTTP/1.1 request over a TLS connection that sends no SNI extension; answers the status line's code. */
function noSniRequest(host: string): Promise<{ status: number; certificateSan: string }> {
  return new Promise((resolve, reject) => {
    // No servername option and an IP host: node sends no SNI. The certificate is checked below, by name, not by the IP.
    const socket = tls.connect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined });
    let text = '';
    socket.once('secureConnect', () => socket.write(`GET /nosni HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), certificateSan: socket.getPeerX509Certificate()?.subjectAltName ?? '' }));
    socket.once('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer')));
  });
}

t.test('class 2: without SNI the default (*) server is selected, and the hosts of other servers are 421', async (t) => {
  const since = app.received.length;
  const noSniSecure = await noSniRequest('secure.example.com');
  t.equal(noSniSecure.certificateSan, 'DNS:default.example.com', 'the handshake selected the default server');
  t.equal(noSniSecure.status, 421);
  t.equal((await noSniRequest('public.example.com')).status, 421);
  t.notOk(reached('secure.example.com', since) || reached('public.example.com', since), 'nothing reached the upstream');
  t.equal((await noSniRequest('other.example.com')).status, 200, 'a host only the default server serves is routed');
});

t.test('class 2: HTTP/2 connection reuse (coalescing) for another server’s :authority → 421 on that stream', async (t) => {
  const since = app.received.length;
  const session = http2.connect(`https://127.0.0.1:${port}`, { servername: 'public.example.com', ca });
  t.teardown(() => session.close());
  const get = (authority: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': '/h2', ':authority': authority });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
      stream.end();
    });
  t.equal(await get('public.example.com'), 200);
  t.equal(await get('secure.example.com'), 421, 'the reused connection may not reach the MUTUAL server');
  t.equal(await get('public.example.com'), 200, 'the connection keeps serving its own host');
  t.notOk(reached('secure.example.com', since));
});
