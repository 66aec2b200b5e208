/**
 * RequestAuthentication + AuthorizationPolicy through a real ingress on real sockets: a JWKS server
 * the gateway fetches keys from, a loopback upstream that records what reached it, the access log in a
 * temp file, and the admin `POST /explain` + `meshgate explain` CLI compared with the proxy's decisions.
 */
import t from 'tap';
import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { readCompleteJsonLines } from '../helpers/json-lines.js';
import { makeKey, sign, startJwksServer } from '../authn/jwt-fixtures.js';
import { freePorts, rawExchange, rawStatus, request, sleep } from '../e2e-ingress/support.js';

const ISSUER = 'https://issuer.test';
const CLI = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));

const rsaKey = await makeKey('rsa-1', 'RS256');
const strangerKey = await makeKey('rsa-1', 'RS256');
const jwks = await startJwksServer([rsaKey.publicJwk]);
t.teardown(() => jwks.close());
const app = await startUpstream(undefined, 'app');
t.teardown(() => app.close());

const [admin = 0, port = 0] = await freePorts(2);
const dir = await configDir('');
t.teardown(() => dir.remove());
const accessLogPath = join(dir.dir, 'access.log');

const yaml = `apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${admin}
  debugHeaders: true
  pathNormalization: MERGE_SLASHES
  accessLog: { enabled: true, path: ${accessLogPath} }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: ${port}, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: app, namespace: istio-system }
spec:
  hosts: [app.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${app.port} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: istio-system }
spec:
  hosts: [example.com]
  gateways: [edge]
  http:
    - name: all
      route: [{ destination: { host: app.internal } }]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: istio-system }
spec:
  jwtRules:
    - issuer: ${ISSUER}
      jwksUri: ${jwks.url}
      audiences: [shop]
      outputClaimToHeaders: [{ header: x-user-group, claim: group }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: admin-needs-jwt, namespace: istio-system }
spec:
  action: DENY
  rules:
    - from: [{ source: { notRequestPrincipals: ["*"] } }]
      to: [{ operation: { hosts: [example.com, "example.com:*"], paths: [/admin, "/admin/*", "/admin;*"] } }]
`;
await dir.write(yaml);
const gateway = await startGateway(dir.file);
t.teardown(() => gateway.stop());

const good = (claims: Record<string, unknown> = {}): Promise<string> => sign(rsaKey, { iss: ISSUER, sub: 'alice', aud: 'shop', group: 'admins', ...claims });

/** The gateway hands its lines to the file at least every 500 ms (plugins/access-log); a loaded CI machine can take longer. */
const ACCESS_LOG_WAIT_MS = 5000;

async function accessLogLines(minimum: number): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + ACCESS_LOG_WAIT_MS;
  for (;;) {
    const lines = await readCompleteJsonLines(accessLogPath);
    if (lines.length >= minimum) return lines;
    if (Date.now() > deadline) throw new Error(`the access log never reached ${minimum} lines`);
    await sleep(20);
  }
}

async function lineFor(requestId: string): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + ACCESS_LOG_WAIT_MS;
  for (;;) {
    const found = (await accessLogLines(1)).find((line) => line.request_id === requestId);
    if (found !== undefined || Date.now() > deadline) return found;
    await sleep(20);
  }
}

t.test('a valid token: forwarded without Authorization, claim copied to a header', async (t) => {
  const token = await good();
  const reply = await request(port, '/admin/users', { headers: { authorization: `Bearer ${token}`, 'x-user-group': 'forged' } });
  t.equal(reply.status, 200, reply.body);
  const seen = app.received.at(-1);
  t.equal(seen?.url, '/admin/users');
  t.equal(seen?.headers.authorization, undefined, 'the verified token is not forwarded (forwardOriginalToken default false)');
  t.equal(seen?.headers['x-user-group'], 'admins', 'outputClaimToHeaders reaches the upstream; the client copy is replaced');
});

t.test('a rejected token is logged by the gateway with its reason (request.log is the listener logger)', async (t) => {
  const before = gateway.logs.length;
  const unknownIssuer = await good({ iss: 'https://evil.test' });
  const reply = await request(port, '/catalog', { headers: { authorization: `Bearer ${unknownIssuer}` } });
  t.equal(reply.status, 401);
  const logged = gateway.logs.slice(before).find((line) => line.msg === 'JWT rejected');
  t.ok(logged, 'one log line for the rejection');
  t.match(logged, { level: 30, authn: { location: /\S/ } });
  t.notOk(JSON.stringify(logged).includes(unknownIssuer), 'the token itself is never logged');
});

t.test('bad tokens are refused with the Istio statuses; the upstream sees none of them', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const expired = await sign(rsaKey, { iss: ISSUER, sub: 'alice', aud: 'shop', iat: now - 7200, exp: now - 3600 });
  const wrongAudience = await good({ aud: 'other' });
  const unknownIssuer = await good({ iss: 'https://evil.test' });
  const foreignKey = await sign(strangerKey, { iss: ISSUER, sub: 'alice', aud: 'shop' });
  const payload = Buffer.from(JSON.stringify({ iss: ISSUER, sub: 'alice', aud: 'shop', exp: now + 600 })).toString('base64url');
  const algNone = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
  // HS256 keyed with the RSA public key's bytes: the classic algorithm-confusion forgery.
  const publicKeyBytes = new TextEncoder().encode(JSON.stringify(rsaKey.publicJwk));
  const hsConfusion = await new SignJWT({ iss: ISSUER, sub: 'alice', aud: 'shop' })
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
    .setExpirationTime(now + 600)
    .sign(publicKeyBytes);
  const cases: [string, string, number][] = [
    ['expired', expired, 401],
    ['wrong audience', wrongAudience, 403],
    ['unknown issuer', unknownIssuer, 401],
    ['signed by another key', foreignKey, 401],
    ['alg none', algNone, 401],
    ['HS/RS confusion', hsConfusion, 401],
  ];
  for (const [name, token, status] of cases) {
    const before = app.received.length;
    const reply = await request(port, '/public/x', { headers: { authorization: `Bearer ${token}` } });
    t.equal(reply.status, status, `${name}: ${reply.body}`);
    t.match(String(reply.headers['www-authenticate']), /^Bearer realm="http:\/\/example\.com\/public\/x", error="invalid_token"$/, `${name}: www-authenticate`);
    t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
  }
});

t.test('two Authorization headers on a raw socket: 401, nothing reaches the upstream', async (t) => {
  const token = await good();
  const before = app.received.length;
  const response = await rawExchange(
    port,
    `GET /admin HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer garbage\r\nConnection: close\r\n\r\n`,
  );
  t.equal(rawStatus(response), 401, response.split('\r\n')[0]);
  t.equal(app.received.length, before);
});

async function deniedOnSocket(t: Test, name: string, target: string, host = 'example.com'): Promise<string> {
  const before = app.received.length;
  const response = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
  return response;
}

t.test('/admin without a token: 403 naming the policy, in the reply header and the access log', async (t) => {
  const requestId = randomUUID();
  const reply = await request(port, '/admin', { headers: { 'x-request-id': requestId } });
  t.equal(reply.status, 403);
  t.equal(reply.body, 'RBAC: access denied\n');
  t.match(String(reply.headers['x-meshgate-reason']), /rbac_access_denied_matched_policy\[istio-system\/admin-needs-jwt\]/);
  const line = await lineFor(requestId);
  t.ok(line, 'the denial has an access-log line');
  t.equal(line?.response_code, 403);
  t.equal(line?.response_code_details, 'rbac_access_denied_matched_policy[istio-system/admin-needs-jwt]');
  t.equal(line?.upstream_host, null, 'no upstream was contacted');
});

t.test('path and host variants of /admin are denied exactly like /admin (raw socket, real normaliser)', async (t) => {
  const variants: [string, string, string?][] = [
    ['double slash', '//admin'],
    ['encoded dot segment', '/%2e%2e/admin'],
    ['dot-dot through /public', '/public/../admin'],
    ['fragment', '/admin#frag'],
    ['encoded letters', '/%61dmin'],
    ['trailing dot segment', '/admin/.'],
    ['absolute form naming the host', 'http://example.com/admin'],
    ['upper-case host with port', '/admin', 'EXAMPLE.COM:443'],
  ];
  for (const [name, target, host] of variants) {
    const response = await deniedOnSocket(t, name, target, host);
    t.equal(rawStatus(response), 403, `${name}: ${response.split('\r\n')[0] ?? ''}`);
    t.match(response, /x-meshgate-reason: rbac_access_denied_matched_policy\[istio-system\/admin-needs-jwt\]/i, `${name}: the policy is named`);
  }
});

t.test('variants the proxy cannot map onto a served route are refused before any upstream', async (t) => {
  // Backslash first: not origin-form, refused by the parser or the normaliser (400).
  const backslash = await deniedOnSocket(t, 'backslash', '\\admin');
  t.equal(rawStatus(backslash), 400, backslash.split('\r\n')[0]);
  // Absolute form naming another host: routed by its own authority, which no VirtualService serves.
  const other = await deniedOnSocket(t, 'absolute form, other host', 'http://other/admin');
  t.equal(rawStatus(other), 404, other.split('\r\n')[0]);
  // Path parameters are refused at the ingress by default (MeshConfig pathParameters: REJECT), before any policy.
  const parameters = await deniedOnSocket(t, 'path parameter', '/admin;x');
  t.equal(rawStatus(parameters), 400, parameters.split('\r\n')[0]);
});

t.test('paths are case-sensitive, as in Istio: /ADMIN is not /admin, so it is only safe if the backend agrees', async (t) => {
  const before = app.received.length;
  const reply = await request(port, '/ADMIN');
  t.equal(reply.status, 200, 'Istio path matching is case-sensitive; a case-insensitive backend needs its own policy');
  t.equal(app.received.at(before)?.url, '/ADMIN', 'the upstream receives exactly the path the policy saw');
});

t.test('admin POST /explain and `meshgate explain` agree with the proxy', async (t) => {
  const token = await good();
  const described = [
    { name: 'anonymous /admin', proxy: { path: '/admin', headers: {} as Record<string, string> }, explain: { method: 'GET', host: 'example.com', path: '/admin' } },
    {
      name: 'authenticated /admin',
      proxy: { path: '/admin', headers: { authorization: `Bearer ${token}` } },
      explain: { method: 'GET', host: 'example.com', path: '/admin', claims: { iss: ISSUER, sub: 'alice' } },
    },
    { name: 'anonymous /public', proxy: { path: '/public', headers: {} }, explain: { method: 'GET', host: 'example.com', path: '/public' } },
  ];
  const run = promisify(execFile);
  // The CLI compiles the config afresh in its own process; the three run side by side to stay fast.
  const cliDecisions = await Promise.all(
    described.map(async ({ explain }) => {
      const args = [CLI, 'explain', '-c', dir.file, '--method', explain.method, '--host', explain.host, '--path', explain.path];
      if (explain.claims !== undefined) args.push('--claims', JSON.stringify(explain.claims));
      const cli = await run(process.execPath, args, { timeout: 60_000 });
      return cli.stdout.split(/\s/)[0];
    }),
  );
  for (const [index, { name, proxy, explain }] of described.entries()) {
    const proxied = await request(port, proxy.path, { headers: proxy.headers });
    const proxyDecision = proxied.status === 403 ? 'DENY' : 'ALLOW';
    const viaAdmin = await request(admin, '/explain', { method: 'POST', host: '127.0.0.1', headers: { 'content-type': 'application/json' }, body: JSON.stringify(explain) });
    t.equal(viaAdmin.status, 200, viaAdmin.body);
    const adminDecision = (JSON.parse(viaAdmin.body) as { decision: string }).decision;
    t.equal(adminDecision, proxyDecision, `${name}: admin explain = proxy (${proxyDecision})`);
    t.equal(cliDecisions[index], proxyDecision, `${name}: CLI explain = proxy`);
  }
  // The body's fields are the CLI's option names: an unknown one would silently change the answer.
  const misnamed = await request(admin, '/explain', {
    method: 'POST',
    host: '127.0.0.1',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ path: '/admin', jwtClaims: { iss: ISSUER, sub: 'alice' }, peerPrincipal: 'cluster.local/ns/a/sa/b' }),
  });
  t.equal(misnamed.status, 400);
  t.match(misnamed.body, /unknown fields \\"jwtClaims\\", \\"peerPrincipal\\" \(known: method, host, path, header, principal, claims, sourceIp/);
});
