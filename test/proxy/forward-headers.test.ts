import t from 'tap';
import { acceptRequestId, appendForwardedFor, cleanResponseHeaders, copyRequestHeaders } from '../../gateway/proxy/forward-headers.js';
import { shadowAuthority } from '../../gateway/proxy/mirror.js';
import { daprInvocation } from '../../gateway/dapr/invocation.js';

t.test('hop-by-hop headers and those named in Connection never cross the proxy', async (t) => {
  const out = copyRequestHeaders(
    { host: 'a', connection: 'keep-alive, x-secret', 'x-secret': '1', 'keep-alive': 'timeout=5', te: 'trailers', upgrade: 'h2c', 'x-kept': 'yes', ':authority': 'a' },
    false,
  );
  t.same(out, { 'x-kept': 'yes' });
});

t.test('at the edge the mesh control headers are removed; inside the mesh they pass', async (t) => {
  const incoming = { 'x-envoy-retry-on': '5xx', 'x-forwarded-client-cert': 'URI=spiffe://x', 'x-meshgate-reason': 'forged', 'x-app': '1' };
  t.same(copyRequestHeaders(incoming, true), { 'x-app': '1' });
  t.same(Object.keys(copyRequestHeaders(incoming, false)).sort(), ['x-app', 'x-envoy-retry-on', 'x-forwarded-client-cert', 'x-meshgate-reason']);
});

t.test('response headers lose hop-by-hop ones', async (t) => {
  t.same(cleanResponseHeaders({ connection: 'close, x-internal', 'x-internal': 'a', 'transfer-encoding': 'chunked', 'content-type': 'text/plain' }), { 'content-type': 'text/plain' });
});

t.test('X-Forwarded-For appends the peer', async (t) => {
  t.equal(appendForwardedFor(undefined, '10.0.0.1'), '10.0.0.1');
  t.equal(appendForwardedFor('1.2.3.4', '10.0.0.1'), '1.2.3.4, 10.0.0.1');
  t.equal(appendForwardedFor(['1.2.3.4', '5.6.7.8'], '10.0.0.1'), '1.2.3.4, 5.6.7.8, 10.0.0.1');
});

t.test('a client request id is kept only when it is a plausible token', async (t) => {
  t.equal(acceptRequestId('abc-123'), 'abc-123');
  t.equal(acceptRequestId('bad id with spaces'), null);
  t.equal(acceptRequestId('x'.repeat(129)), null);
  t.equal(acceptRequestId(['a', 'b']), null);
});

t.test('mirror copies get -shadow before the port', async (t) => {
  t.equal(shadowAuthority('httpbin:8000'), 'httpbin-shadow:8000');
  t.equal(shadowAuthority('httpbin'), 'httpbin-shadow');
  t.equal(shadowAuthority('[::1]'), '[::1]-shadow');
});

t.test('Dapr-style invocation names the app and the method path', async (t) => {
  t.same(daprInvocation('/v1.0/invoke/Product-Service/method/api/products/1', undefined), { appId: 'product-service', path: '/api/products/1' });
  t.same(daprInvocation('/v1.0/invoke/orders/method', undefined), { appId: 'orders', path: '/' });
  t.equal(daprInvocation('/v1.0/invoke//method/x', undefined), null);
  t.equal(daprInvocation('/api/products/1', undefined), null);
  t.same(daprInvocation('/checkout/100', 'Checkout'), { appId: 'checkout', path: '/checkout/100' }, 'dapr-app-id names the app on any path');
  t.same(daprInvocation('/v1.0/invoke/a/method/b', 'c'), { appId: 'c', path: '/b' }, 'the header wins over the path');
});
