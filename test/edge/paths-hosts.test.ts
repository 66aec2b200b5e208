/**
 * Edge hardening, class 5 (paths and hosts), on raw sockets against a real ingress: path parameters,
 * merged slashes, and authorities with zero-padded or empty ports, trailing dots and commas. Each
 * refusal is checked for its status and for nothing having reached the recording upstream; what is
 * accepted is checked for the exact path and Host the upstream received, and for the policy and rate
 * limit having seen that same path.
 */
import t from 'tap';
import type { Test } from 'tap';
import { startUpstream } from '../helpers/gateway.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, rawExchange, rawStatus, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const app = await startUpstream(undefined, 'app');
t.teardown(() => app.close());

const policies = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: istio-system }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: [/admin, "/admin/*"] } }]
    - to: [{ operation: { hosts: [internal.example.com, "internal.example.com:*"] } }]
---
apiVersion: meshgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: limited, namespace: istio-system }
spec:
  rules:
    - match: { paths: ["/limited/*"] }
      key: [{ remoteIp: {} }]
      limits: [{ requests: 1, per: 60s }]
`;

async function scenario(t: Test, meshExtra: string): Promise<number> {
  const [admin = 0, port = 0] = await freePorts(2);
  await startScenario(
    t,
    [
      meshConfigYaml(admin, meshExtra),
      gatewayYaml('edge', httpServerYaml(port, ['*'])),
      serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
      virtualServiceYaml('app', ['example.com', 'internal.example.com'], 'edge', '    - route: [{destination: {host: app.internal}}]\n'),
      policies,
    ].join('\n'),
  );
  return port;
}

const port = await scenario(t, '');

function get(target: string, host = 'example.com'): string {
  return `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
}

async function refused(t: Test, listener: number, name: string, bytes: string, status: number, reason?: RegExp): Promise<void> {
  const before = app.received.length;
  const response = await rawExchange(listener, bytes);
  t.equal(rawStatus(response), status, `${name}: ${response.split('\r\n')[0] ?? '(nothing)'}`);
  if (reason !== undefined) t.match(response, reason, `${name}: the reply says why`);
  t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
}

async function forwarded(t: Test, listener: number, name: string, bytes: string): Promise<{ url: string; host: string | undefined }> {
  const before = app.received.length;
  const response = await rawExchange(listener, bytes);
  t.equal(rawStatus(response), 200, `${name}: ${response.split('\r\n')[0] ?? '(nothing)'}`);
  t.equal(app.received.length, before + 1, `${name}: one request reached the upstream`);
  const seen = app.received.at(-1);
  return { url: seen?.url ?? '', host: seen?.headers.host };
}

t.test('class 5 paths — Tomcat path parameters (Orange Tsai, "Breaking Parser Logic", Black Hat 2018: the "..;" bypass): refused at the ingress by default', async (t) => {
  await refused(t, port, '/admin;x/users', get('/admin;x/users'), 400, /path parameters/);
  await refused(t, port, '/..;/admin', get('/public/..;/admin'), 400);
  await refused(t, port, '/admin;jsessionid=1', get('/admin;jsessionid=1'), 400);
  await refused(t, port, 'absolute-form with ;', get('http://example.com/admin;x'), 400);
  await refused(t, port, '/limited;v=1/a', get('/limited;v=1/a'), 400);
  const plain = await forwarded(t, port, 'an escaped %3B is data, not a parameter', get('/public/a%3Bb'));
  t.equal(plain.url, '/public/a%3Bb');
});

t.test('class 5 paths — Envoy Gateway default MERGE_SLASHES: //admin is /admin to the policy and the upstream', async (t) => {
  await refused(t, port, '//admin', get('//admin'), 403);
  await refused(t, port, '/admin//users', get('/admin//users'), 403);
  const seen = await forwarded(t, port, '/public//x', get('/public//x'));
  t.equal(seen.url, '/public/x', 'the merged path is the one forwarded');
});

t.test('class 5 hosts — RFC 3986 §3.2.3: zero-padded, empty and non-numeric ports are 400', async (t) => {
  await refused(t, port, 'Host example.com:080', get('/public', 'example.com:080'), 400, /invalid_authority/);
  await refused(t, port, 'Host internal.example.com:0080', get('/public', 'internal.example.com:0080'), 400);
  await refused(t, port, 'Host example.com:', get('/public', 'example.com:'), 400);
  await refused(t, port, 'Host example.com:8o', get('/public', 'example.com:8o'), 400);
  await refused(t, port, 'Host example.com:65536', get('/public', 'example.com:65536'), 400);
  await refused(t, port, 'absolute-form http://example.com:080/', get('http://example.com:080/public'), 400);
  await refused(t, port, 'a DENY host with a plain port still applies', get('/public', 'internal.example.com:80'), 403);
});

t.test('class 5 hosts — RFC 9110 §7.2: comma-joined and otherwise invalid hosts are 400', async (t) => {
  await refused(t, port, 'Host a.com,b.com', get('/public', 'example.com,internal.example.com'), 400, /invalid_authority/);
  await refused(t, port, 'Host with a space', get('/public', 'example.com internal.example.com'), 400);
  await refused(t, port, 'Host with userinfo', get('/public', 'user@internal.example.com'), 400);
  await refused(t, port, 'Host with two trailing dots', get('/public', 'internal.example.com..'), 400);
});

t.test('class 5 hosts — RFC 1034 §3.1 absolute names: one trailing dot is removed once, for policies, routing and the forwarded Host', async (t) => {
  await refused(t, port, 'internal.example.com. is still internal.example.com', get('/public', 'internal.example.com.'), 403);
  await refused(t, port, 'with a port too', get('/public', 'internal.example.com.:443'), 403);
  const seen = await forwarded(t, port, 'example.com.', get('/public', 'Example.COM.'));
  t.equal(seen.host, 'example.com', 'the upstream gets the name without the dot');
});

t.test('class 5 paths — STRIP: policies, rate-limit keys and the upstream all see the path without parameters', async (t) => {
  const strip = await scenario(t, '  pathParameters: STRIP\n');
  await refused(t, strip, '/admin;x/users is /admin/users', get('/admin;x/users'), 403);
  await refused(t, strip, '/public/..;/admin resolves as Tomcat does', get('/public/..;/admin'), 403);
  const seen = await forwarded(t, strip, '/public;jsessionid=1/x', get('/public;jsessionid=1/x?q=1'));
  t.equal(seen.url, '/public/x?q=1', 'forwarded without the parameters');
  await forwarded(t, strip, 'first /limited/a', get('/limited/a'));
  await refused(t, strip, '/limited;v=2/a counts as /limited/a', get('/limited;v=2/a'), 429);
});

t.test("class 5 paths — Istio's behaviour one setting away: KEEP + BASE forwards ;params and //", async (t) => {
  const istio = await scenario(t, '  pathParameters: KEEP\n  pathNormalization: BASE\n');
  const params = await forwarded(t, istio, '/public;x=1', get('/public;x=1'));
  t.equal(params.url, '/public;x=1');
  const slashes = await forwarded(t, istio, '/public//x', get('/public//x'));
  t.equal(slashes.url, '/public//x');
  await refused(t, istio, 'a dot segment with parameters is still refused (no policy/backend disagreement)', get('/public/..;/admin'), 400);
});
