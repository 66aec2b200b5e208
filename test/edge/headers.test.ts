/**
 * Edge hardening, class 4 (headers), on raw sockets against a real ingress: header count and size
 * limits, underscored names, request-override headers, repeated headers seen by policies exactly as
 * forwarded, claims that cannot be a header, HTTP/1.0 with Transfer-Encoding. Every refusal is checked
 * twice: the status the client got and that nothing reached the recording upstream.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createRequestGuard, effectiveEdgeSettings } from '../../gateway/http/request-guard.js';
import { defaultMeshConfig } from '../../gateway/config/kinds/mesh-config.js';
import { loadConfig } from '../../gateway/config/load.js';
import { validateResources } from '../../gateway/config/validate.js';
import { configDir, startUpstream } from '../helpers/gateway.js';
import { makeKey, sign, startJwksServer } from '../authn/jwt-fixtures.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, rawExchange, rawStatus, request, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const ISSUER = 'https://issuer.test';
const app = await startUpstream(undefined, 'app');
(app.server as { maxHeaderSize?: number }).maxHeaderSize = 128 * 1024;
t.teardown(() => app.close());
const key = await makeKey('k1', 'ES256');
const jwks = await startJwksServer([key.publicJwk]);
t.teardown(() => jwks.close());

const policies = `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: istio-system }
spec:
  jwtRules:
    - issuer: ${ISSUER}
      jwksUri: ${jwks.url}
      outputClaimToHeaders: [{ header: x-user-group, claim: group }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-debug, namespace: istio-system }
spec:
  action: DENY
  rules:
    - when: [{ key: "request.headers[x-debug]", values: ["*"] }]
    - when: [{ key: "request.headers[user-agent]", values: ["evil-bot"] }]
    - when: [{ key: "request.headers[x-role]", values: ["admin*"] }]
`;

async function scenario(t: Test, meshExtra: string): Promise<number> {
  const [admin = 0, port = 0] = await freePorts(2);
  await startScenario(
    t,
    [
      meshConfigYaml(admin, meshExtra),
      gatewayYaml('edge', httpServerYaml(port, ['*'])),
      serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
      virtualServiceYaml('app', ['example.com'], 'edge', '    - route: [{destination: {host: app.internal}}]\n'),
      policies,
    ].join('\n'),
  );
  return port;
}

const port = await scenario(t, '');

/** Sends raw bytes; asserts the status and that the upstream received nothing. */
async function refused(t: Test, name: string, bytes: string, status: number, reason?: RegExp): Promise<void> {
  const before = app.received.length;
  const response = await rawExchange(port, bytes);
  t.equal(rawStatus(response), status, `${name}: ${response.split('\r\n')[0] ?? '(nothing)'}`);
  if (reason !== undefined) t.match(response, reason, `${name}: the reply says why`);
  t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
}

/** Sends raw bytes; asserts a 200 and returns the headers the upstream received. */
async function forwarded(t: Test, bytes: string): Promise<Record<string, string | string[] | undefined>> {
  const before = app.received.length;
  const response = await rawExchange(port, bytes);
  t.equal(rawStatus(response), 200, response.split('\r\n')[0] ?? '(nothing)');
  t.equal(app.received.length, before + 1, 'exactly one request reached the upstream');
  return app.received.at(-1)?.headers ?? {};
}

const head = (lines: readonly string[], requestLine = 'GET /h HTTP/1.1'): string => `${requestLine}\r\nHost: example.com\r\n${lines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`;

t.test('class 4 headers — Envoy max_request_headers_count (100) / RFC 6585 §5: 101 header lines get 431, 100 pass', async (t) => {
  // Host and Connection are two of the lines.
  const filler = (count: number): string[] => Array.from({ length: count }, (_, i) => `X-Filler-${i}: v`);
  await refused(t, '101 lines', head(filler(99)), 431, /x-meshgate-reason: DPE too_many_request_headers/);
  await refused(t, '101 lines, all the same name', head(Array.from({ length: 99 }, () => 'X-Same: v')), 431);
  const seen = await forwarded(t, head(filler(98)));
  t.equal(seen['x-filler-97'], 'v', 'the 100th line is forwarded');
});

t.test('class 4 headers — Envoy max_request_headers_kb (60 KiB) / RFC 6585 §5: a larger header block gets 431', async (t) => {
  await refused(t, '61 KiB in one header', head([`X-Big: ${'a'.repeat(61 * 1024)}`]), 431);
  await refused(t, '61 KiB over many headers', head(Array.from({ length: 61 }, (_, i) => `X-Part-${i}: ${'b'.repeat(1020)}`)), 431);
});

t.test('class 4 headers — nginx underscores_in_headers / Envoy headers_with_underscores_action: x_debug cannot stand in for x-debug', async (t) => {
  await refused(t, 'x-debug itself is denied', head(['X-Debug: 1']), 403);
  const seen = await forwarded(t, head(['X_Debug: 1', 'x_real_ip: 10.0.0.1']));
  t.equal(seen.x_debug, undefined, 'the underscored name is dropped at the edge');
  t.equal(seen.x_real_ip, undefined);
  t.equal(seen['x-debug'], undefined);
});

t.test('class 4 headers — request-override headers (X-Original-URL CVE-2018-14773 class) are stripped at the ingress', async (t) => {
  const seen = await forwarded(
    t,
    head(['X-Original-URL: /admin', 'X-Rewrite-URL: /admin', 'X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: DELETE', 'X-Method-Override: PUT', 'X-Kept: yes']),
  );
  for (const name of ['x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override']) {
    t.equal(seen[name], undefined, `${name} never reaches the upstream`);
  }
  t.equal(seen['x-kept'], 'yes', 'other headers are untouched');
});

t.test('class 4 headers — RFC 9110 §5.3: a repeated header is seen by policies exactly as it is forwarded', async (t) => {
  await refused(t, 'x-role: admin then guest (policy sees "admin,guest")', head(['X-Role: admin', 'X-Role: guest']), 403);
  const seen = await forwarded(t, head(['X-Role: guest', 'X-Role: admin']));
  t.equal(seen['x-role'], 'guest,admin', 'forwarded as the one value the policy compared ("guest,admin" does not start with admin)');
  await refused(t, 'a singleton (User-Agent) repeated: the second one would be invisible to policies', head(['User-Agent: curl', 'User-Agent: evil-bot']), 400, /duplicate_singleton_header/);
  await refused(t, 'evil-bot first, as node keeps it', head(['User-Agent: evil-bot', 'User-Agent: curl']), 400);
  await refused(t, 'one evil-bot is simply denied', head(['User-Agent: evil-bot']), 403);
});

t.test('class 4 headers — RFC 9110 §5.5: a JWT claim with CR/LF/NUL cannot become a header: 400 with the reason, never a 5xx', async (t) => {
  for (const [name, group] of [
    ['CRLF (header injection)', 'admins\r\nx-injected: 1'],
    ['bare LF', 'admins\nx'],
    ['NUL', 'admins\u0000'],
  ] as const) {
    const token = await sign(key, { iss: ISSUER, sub: 'alice', group });
    const before = app.received.length;
    const res = await request(port, '/claims', { host: 'example.com', headers: { authorization: `Bearer ${token}` } });
    t.equal(res.status, 400, `${name}: ${res.body}`);
    t.match(res.headers['x-meshgate-reason'], /jwt_claim_header_invalid\{x-user-group\}/, `${name}: the reason names the header`);
    t.match(res.body, /CR, LF, NUL/);
    t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
  }
  const ok = await request(port, '/claims', { host: 'example.com', headers: { authorization: `Bearer ${await sign(key, { iss: ISSUER, sub: 'alice', group: 'admins' })}` } });
  t.equal(ok.status, 200);
  t.equal(app.received.at(-1)?.headers['x-user-group'], 'admins');
});

t.test('class 4 headers — RFC 9112 §6.1 / request smuggling: HTTP/1.0 with Transfer-Encoding gets 400', async (t) => {
  await refused(t, 'HTTP/1.0 + chunked', 'POST /te HTTP/1.0\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400, /transfer_encoding_on_http_1_0/);
  await refused(t, 'HTTP/1.0 + chunked + smuggled request', 'POST /te HTTP/1.0\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n', 400);
  t.notOk(app.received.some((r) => r.url === '/smuggled'));
  const before = app.received.length;
  t.equal(rawStatus(await rawExchange(port, 'GET /ten HTTP/1.0\r\nHost: example.com\r\n\r\n')), 200, 'plain HTTP/1.0 still works');
  t.equal(app.received.length, before + 1);
});

t.test("class 4 headers — Istio's behaviour is one setting away (ALLOW underscores, keep override headers)", async (t) => {
  const istioPort = await scenario(t, '  headersWithUnderscoresAction: ALLOW\n  stripOverrideHeaders: false\n');
  const before = app.received.length;
  const response = await rawExchange(istioPort, head(['X_Debug: 1', 'X-Original-URL: /admin']));
  t.equal(rawStatus(response), 200);
  t.equal(app.received.length, before + 1);
  t.equal(app.received.at(-1)?.headers.x_debug, '1');
  t.equal(app.received.at(-1)?.headers['x-original-url'], '/admin');
});

t.test('class 4 headers — REJECT_REQUEST and the sidecar defaults (guard unit)', async (t) => {
  const mesh = defaultMeshConfig();
  const reject = createRequestGuard({ ...effectiveEdgeSettings(mesh, 'ingress'), headersWithUnderscoresAction: 'REJECT_REQUEST' });
  const request = (pairs: string[]) => {
    const headers: Record<string, string | undefined> = {};
    for (let i = 0; i < pairs.length; i += 2) headers[(pairs[i] as string).toLowerCase()] = pairs[i + 1];
    return { httpVersionMajor: 1, httpVersionMinor: 1, headers, rawHeaders: pairs };
  };
  t.same(reject(request(['host', 'a', 'x_debug', '1'])), { status: 400, reason: 'header_name_with_underscore' });
  t.equal(reject(request(['host', 'a', 'x-debug', '1'])), null);
  const sidecar = effectiveEdgeSettings(mesh, 'sidecar');
  t.same(
    { underscores: sidecar.headersWithUnderscoresAction, strip: sidecar.stripOverrideHeaders, params: sidecar.pathParameters, paths: sidecar.pathNormalization },
    { underscores: 'ALLOW', strip: false, params: 'KEEP', paths: 'BASE' },
    "a sidecar keeps Istio's defaults",
  );
});

t.test('class 4 headers — a route header value with CR/LF is refused when the config loads, naming file, line and field', async (t) => {
  const [admin = 0, listener = 0] = await freePorts(2);
  const yaml = [
    meshConfigYaml(admin),
    gatewayYaml('edge', httpServerYaml(listener, ['*'])),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    virtualServiceYaml('app', ['example.com'], 'edge', '    - route: [{destination: {host: app.internal}}]\n      headers: {request: {set: {x-tenant: "a\\r\\nx-injected: 1"}}}\n'),
  ].join('\n');
  const dir = await configDir(yaml);
  t.teardown(() => dir.remove());
  const loaded = await loadConfig(dir.file);
  const diagnostics = [...loaded.diagnostics, ...validateResources(loaded.resources)].filter((d) => d.severity === 'error');
  t.equal(diagnostics.length, 1, diagnostics.map((d) => `${d.code} ${d.message}`).join('; '));
  const line = yaml.split('\n').findIndex((text) => text.includes('x-tenant')) + 1;
  t.match(diagnostics[0], { code: 'MG0108', position: { file: /mesh\.yaml$/, line }, field: 'spec.http[0].headers.request.set["x-tenant"]' });
});
