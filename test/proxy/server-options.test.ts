/**
 * The options an HTTPS listener's server is created with (gateway/proxy/server.ts). TCP_NODELAY is an
 * option because node's HTTP/1.1 fallback of the HTTP/2 server never sets it: a new connection's first
 * response then waited behind the unacknowledged TLS 1.3 session tickets for the client's delayed ACK
 * (~40 ms, seen on the wire). Whether Nagle holds a segment depends on the client's ACK timing, which a
 * test cannot control, so the option is what is checked here; bench/README.md has the capture.
 */
import t from 'tap';
import { http2Options } from '../../gateway/proxy/server.js';
import type { ClientConnectionSettings } from '../../gateway/listeners/listener-spec.js';

const connections: ClientConnectionSettings = {
  requestHeadersTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  upgrades: [],
  http2MaxConcurrentStreams: 100,
  http2MaxPrematureResets: 100,
};
const tls = { options: { minVersion: 'TLSv1.2' as const, ALPNProtocols: ['h2', 'http/1.1'], allowHTTP1: true as const } };

t.test('sockets are accepted with TCP_NODELAY, for HTTP/2 and the HTTP/1.1 fallback', async (t) => {
  t.equal(http2Options(tls, connections)['noDelay'], true);
});

t.test('the TLS settings, the stream limit and the handshake deadline are carried over', async (t) => {
  const options = http2Options(tls, connections);
  t.equal(options['minVersion'], 'TLSv1.2');
  t.same(options['settings'], { maxConcurrentStreams: 100 });
  t.equal(options['handshakeTimeout'], 5_000);
});
