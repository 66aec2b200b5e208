/** RequestAuthentication (docs/policies.md#requestauthentication-jwt) through authn + authz plugins, with a real JWKS server. */
import { connect } from 'node:net';
import t from 'tap';
import { SignJWT, UnsecuredJWT, base64url, exportSPKI, importJWK } from 'jose';
import type { CryptoKey } from 'jose';
import type { RequestAuthenticationSpec } from '../../gateway/config/kinds/request-authentication.js';
import type { Resource } from '../../gateway/config/resource.js';
import { createAuthnPlugin } from '../../plugins/authn/index.js';
import type { AuthnOptions } from '../../plugins/authn/schema.js';
import { authzPlugin } from '../../plugins/authz/index.js';
import { buildPluginHarness } from '../helpers/plugin-harness.js';
import { eventually } from '../helpers/eventually.js';
import { makeResource } from '../helpers/resources.js';
import { makeKey, sign, startJwksServer } from './jwt-fixtures.js';
import type { JwksServer, SigningKey } from './jwt-fixtures.js';

const SECURITY = { apiVersion: 'security.istio.io/v1', namespace: 'my-app' };
const IDP = 'https://idp.test';
const INLINE_IDP = 'https://inline.test';

const rsa = await makeKey('rsa1', 'RS256');
const ec = await makeKey('ec1', 'ES256');
const inlineKey = await makeKey('inline1', 'ES256');
const attacker = await makeKey('attacker', 'RS256');

const requireJwtOnSecure = makeResource(
  'AuthorizationPolicy',
  'require-jwt',
  { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: [`${IDP}/*`, `${INLINE_IDP}/*`] } }], to: [{ operation: { paths: ['/secure*'] } }] }] },
  SECURITY,
);

function requestAuthentication(jwks: JwksServer, timeout = '1s'): Resource {
  const spec: RequestAuthenticationSpec = {
    jwtRules: [
      {
        issuer: IDP,
        jwksUri: jwks.url,
        timeout,
        audiences: ['api'],
        outputPayloadToHeader: 'x-jwt-payload',
        outputClaimToHeaders: [
          { header: 'x-user', claim: 'sub' },
          { header: 'x-team', claim: 'org.team' },
          { header: 'x-admin', claim: 'admin' },
        ],
      },
      {
        issuer: INLINE_IDP,
        jwks: JSON.stringify({ keys: [inlineKey.publicJwk] }),
        fromHeaders: [{ name: 'x-token', prefix: 'Tok ' }],
        fromParams: ['tok'],
        forwardOriginalToken: true,
      },
    ],
  };
  return makeResource('RequestAuthentication', 'jwt', spec, SECURITY);
}

async function harness(jwks: JwksServer, options: Partial<AuthnOptions> = {}, timeout?: string) {
  const built = await buildPluginHarness({
    plugins: [createAuthnPlugin({ jwksMinRefreshIntervalSeconds: 0, ...options }), authzPlugin],
    resources: [requestAuthentication(jwks, timeout), requireJwtOnSecure],
    workload: { namespace: 'my-app' },
  });
  t.teardown(() => built.app.close());
  return built.app;
}

const jwks = await startJwksServer([rsa.publicJwk, ec.publicJwk]);
t.teardown(() => jwks.close());
const app = await harness(jwks);

const good = (key: SigningKey, claims: Record<string, unknown> = {}) => sign(key, { iss: IDP, sub: 'alice', aud: 'api', ...claims });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function get(url: string, headers: Record<string, string> = {}) {
  return app.inject({ method: 'GET', url, headers });
}

type Echo = { headers: Record<string, string | undefined> };

t.test('valid RS256 and ES256 tokens: principal set, token removed, claims and payload forwarded', async (t) => {
  for (const key of [rsa, ec]) {
    const token = await good(key, { org: { team: 'core' }, admin: true });
    const response = await get('/secure/x', bearer(token));
    t.equal(response.statusCode, 200, key.alg);
    const forwarded = (response.json() as Echo).headers;
    t.equal(forwarded['authorization'], undefined, 'forwardOriginalToken defaults to false');
    t.equal(forwarded['x-user'], 'alice');
    t.equal(forwarded['x-team'], 'core', 'nested claim a.b');
    t.equal(forwarded['x-admin'], 'true', 'boolean claim');
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(forwarded['x-jwt-payload'] ?? ''))) as Record<string, unknown>;
    t.equal(payload['sub'], 'alice');
    t.notOk(forwarded['x-jwt-payload']?.includes('='), 'base64url without padding');
  }
});

t.test('no token: anonymous, so authz decides; forged claim headers are stripped', async (t) => {
  const open = await get('/public', { 'x-user': 'root', 'x-jwt-payload': 'forged' });
  t.equal(open.statusCode, 200);
  t.equal((open.json() as Echo).headers['x-user'], undefined);
  t.equal((open.json() as Echo).headers['x-jwt-payload'], undefined);
  t.equal((await get('/secure/x')).statusCode, 403, 'DENY notRequestPrincipals requires a JWT');
  t.equal((await get('/public', { authorization: 'Basic dXNlcjpwdw==' })).statusCode, 200, 'another auth scheme is not a JWT');
});

t.test('the default Bearer scheme is case-insensitive (RFC 7235); an explicit fromHeaders prefix must match exactly', async (t) => {
  const token = await good(rsa);
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    t.equal((await get('/secure/x', { authorization: `${scheme} ${token}` })).statusCode, 200, `${scheme} <token>`);
  }
  const inline = await sign(inlineKey, { iss: INLINE_IDP, sub: 'x' });
  t.equal((await get('/secure/x', { 'x-token': `Tok ${inline}` })).statusCode, 200, 'Tok <token>');
  const lowerCased = await get('/secure/x', { 'x-token': `tok ${inline}` });
  t.equal(lowerCased.statusCode, 401, 'tok <token> does not carry the configured prefix');
  t.equal(lowerCased.body, 'Jwt header x-token does not start with the required prefix\n');
});

t.test('401 bodies and www-authenticate as Envoy sends them', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const expired = await get('/public', bearer(await good(rsa, { exp: now - 120 })));
  t.equal(expired.statusCode, 401);
  t.equal(expired.body, 'Jwt is expired\n');
  t.equal(expired.headers['www-authenticate'], 'Bearer realm="http://localhost:80/public", error="invalid_token"');
  t.equal((await get('/public', bearer(await good(rsa, { exp: now - 30 })))).statusCode, 200, 'within the 60 s clock skew');
  const early = await get('/public', bearer(await good(ec, { nbf: now + 300 })));
  t.equal(early.body, 'Jwt not yet valid\n');
  const audience = await get('/public', bearer(await good(rsa, { aud: ['web', 'other'] })));
  t.equal(audience.statusCode, 403);
  t.equal(audience.body, 'Audiences in Jwt are not allowed\n');
  t.equal((await get('/public', bearer(await good(rsa, { aud: ['web', 'api'] })))).statusCode, 200, 'any listed audience');
  const unknownIssuer = await get('/public', bearer(await sign(rsa, { iss: 'https://evil.test', sub: 'x', aud: 'api' })));
  t.equal(unknownIssuer.statusCode, 401, 'unknown issuer is never treated as no token');
  t.equal(unknownIssuer.body, 'Jwt issuer is not configured\n');
  const wrongLocation = await get('/public', bearer(await sign(inlineKey, { iss: INLINE_IDP, sub: 'x' })));
  t.equal(wrongLocation.body, 'Jwt issuer is not configured\n', 'issuer configured only for other locations');
});

t.test('bypass: alg none, HS256 signed with the RSA public key, tampered signature', async (t) => {
  const none = new UnsecuredJWT({ iss: IDP, sub: 'alice', aud: 'api' }).setExpirationTime('5m').encode();
  t.equal((await get('/secure/x', bearer(none))).statusCode, 401, 'alg none');
  const publicPem = await exportSPKI((await importJWK(rsa.publicJwk, 'RS256', { extractable: true })) as CryptoKey);
  const confused = await new SignJWT({ iss: IDP, sub: 'alice', aud: 'api' })
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa1' })
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(publicPem));
  const response = await get('/secure/x', bearer(confused));
  t.equal(response.statusCode, 401, 'key confusion');
  t.equal(response.body, "Jwks doesn't have key to match kid or alg from Jwt\n");
  const token = await good(rsa);
  const [h, , signature] = token.split('.');
  const forgedPayload = base64url.encode(JSON.stringify({ iss: IDP, sub: 'root', aud: 'api', exp: 9_999_999_999 }));
  const tampered = await get('/secure/x', bearer(`${h}.${forgedPayload}.${signature}`));
  t.equal(tampered.body, 'Jwt verification fails\n');
});

t.test('bypass: kid/jku/jwk header tricks — keys only ever come from the configured JWKS', async (t) => {
  const attackerJwks = await startJwksServer([attacker.publicJwk]);
  t.teardown(() => attackerJwks.close());
  const before = attackerJwks.fetches;
  const jku = await sign(attacker, { iss: IDP, sub: 'alice', aud: 'api' }, { jku: attackerJwks.url });
  t.equal((await get('/secure/x', bearer(jku))).statusCode, 401);
  const embedded = await sign(attacker, { iss: IDP, sub: 'alice', aud: 'api' }, { kid: 'rsa1', jwk: attacker.publicJwk });
  t.equal((await get('/secure/x', bearer(embedded))).body, 'Jwt verification fails\n', 'claims the real kid, wrong key');
  t.equal(attackerJwks.fetches - before, 0, 'jku never fetched');
  const noKid = await sign(rsa, { iss: IDP, sub: 'alice', aud: 'api' }, { kid: undefined });
  t.equal((await get('/secure/x', bearer(noKid))).statusCode, 200, 'without kid every key of the right algorithm is tried');
});

t.test('bypass: huge and malformed tokens are rejected before crypto', async (t) => {
  const huge = await good(rsa, { pad: 'x'.repeat(9000) });
  const response = await get('/public', bearer(huge));
  t.equal(response.statusCode, 401);
  t.equal(response.body, 'Jwt is too large\n');
  t.equal((await get('/public', bearer('abc'))).body, 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections\n');
  t.equal((await get('/public', bearer(`${base64url.encode('{bad')}.e30.sig`))).body, 'Jwt header is an invalid JSON\n');
  const badPayload = `${base64url.encode('{"alg":"RS256","kid":"rsa1"}')}.${base64url.encode('[1')}.sig`;
  t.equal((await get('/public', bearer(badPayload))).body, 'Jwt payload is an invalid JSON\n');
  t.equal((await get('/public', { authorization: 'Bearer ' })).statusCode, 401, 'empty token');
});

t.test('locations: default access_token param, explicit header prefix, params, tokens in two places', async (t) => {
  const token = await good(ec);
  t.equal((await get(`/secure/x?access_token=${token}`)).statusCode, 200, 'default query parameter');
  const twice = await get(`/secure/x?access_token=${token}`, bearer(token));
  t.equal(twice.statusCode, 401, 'bypass: tokens in two places');
  t.equal(twice.body, 'Multiple JWTs in the request are not allowed\n');
  t.equal((await get(`/secure/x?access_token=${token}&access_token=${token}`)).statusCode, 401, 'repeated parameter');
  const inline = await sign(inlineKey, { iss: INLINE_IDP, sub: 'bob' });
  const kept = await get('/secure/x', { 'x-token': `Tok ${inline}` });
  t.equal(kept.statusCode, 200);
  t.equal((kept.json() as Echo).headers['x-token'], `Tok ${inline}`, 'forwardOriginalToken: true keeps the header');
  t.equal((await get('/secure/x', { 'x-token': `Bearer ${inline}` })).statusCode, 401, 'explicit prefix must match exactly');
  t.equal((await get(`/secure/x?tok=${inline}`)).statusCode, 200, 'fromParams');
});

t.test('bypass: duplicate Authorization headers on the wire are refused', async (t) => {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const port = Number(new URL(address).port);
  const token = await good(rsa);
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.end(`GET /public HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer garbage\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
    });
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
  });
  t.match(raw, /^HTTP\/1\.1 401/);
  t.match(raw, /Multiple JWTs in the request are not allowed/);
});

t.test('CORS preflight bypasses JWT checks', async (t) => {
  const response = await app.inject({
    method: 'OPTIONS',
    url: '/public',
    headers: { origin: 'https://app.test', 'access-control-request-method': 'GET', authorization: 'Bearer broken' },
  });
  t.equal(response.statusCode, 200);
});

t.test('JWKS rotation: unknown kid triggers a refresh; cached tokens of a removed key stop working', async (t) => {
  const rotating = await startJwksServer([rsa.publicJwk]);
  t.teardown(() => rotating.close());
  const rotatingApp = await harness(rotating);
  const oldToken = await good(rsa);
  t.equal((await rotatingApp.inject({ url: '/secure/x', headers: bearer(oldToken) })).statusCode, 200);
  t.equal((await rotatingApp.inject({ url: '/secure/x', headers: bearer(oldToken) })).statusCode, 200, 'served from the verified-token cache');
  const fresh = await makeKey('rsa2', 'RS256');
  rotating.keys = [fresh.publicJwk];
  t.equal((await rotatingApp.inject({ url: '/secure/x', headers: bearer(await good(fresh)) })).statusCode, 200, 'new kid fetched');
  t.equal((await rotatingApp.inject({ url: '/secure/x', headers: bearer(oldToken) })).statusCode, 401, 'rotation drops the cached verification');
});

t.test('JWKS endpoint down: stale keys keep working; never any keys → 401; slow endpoint times out', async (t) => {
  const flaky = await startJwksServer([rsa.publicJwk]);
  t.teardown(() => flaky.close());
  const flakyApp = await harness(flaky, { jwksCacheDurationSeconds: 1 });
  t.equal((await flakyApp.inject({ url: '/secure/x', headers: bearer(await good(rsa)) })).statusCode, 200);
  flaky.behaviour = 'down';
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const fetchesBefore = flaky.fetches;
  t.equal((await flakyApp.inject({ url: '/secure/x', headers: bearer(await good(rsa, { jti: 'new' })) })).statusCode, 200, 'stale keys used');
  // The refresh runs in the background, after the request was answered from the stale keys.
  t.ok(await eventually(() => flaky.fetches, (fetches) => fetches > fetchesBefore), 'a refresh was attempted');

  const dead = await startJwksServer([rsa.publicJwk]);
  dead.behaviour = 'down';
  t.teardown(() => dead.close());
  const deadApp = await harness(dead);
  const noKeys = await deadApp.inject({ url: '/secure/x', headers: bearer(await good(rsa)) });
  t.equal(noKeys.statusCode, 401);
  t.equal(noKeys.body, 'Jwks remote fetch is failed\n');

  const slow = await startJwksServer([rsa.publicJwk]);
  slow.behaviour = 'silent';
  t.teardown(() => slow.close());
  const slowApp = await harness(slow, {}, '200ms');
  const started = Date.now();
  const timedOut = await slowApp.inject({ url: '/secure/x', headers: bearer(await good(rsa)) });
  t.equal(timedOut.statusCode, 401);
  // The endpoint never answers, so only a timeout ends the fetch; the bound only tells the rule's 200 ms
  // from the 5 s default, leaving a loaded machine seconds of room.
  t.ok(Date.now() - started < 4_500, 'bounded by the rule timeout, not the default');
});
