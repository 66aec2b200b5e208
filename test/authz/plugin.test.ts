/** The authz plugin in a real fastify app: the seed policy, path-confusion bypasses, CUSTOM ext-authz. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { FastifyRequest } from 'fastify';
import { createNormalizer } from '../../gateway/http/normalize.js';
import type { PathNormalization } from '../../gateway/http/normalize.js';
import type { PeerIdentity, RequestAttributes } from '../../gateway/pipeline/types.js';
import { authzPlugin } from '../../plugins/authz/index.js';
import { buildPluginHarness } from '../helpers/plugin-harness.js';
import { makeResource } from '../helpers/resources.js';

const SECURITY = { apiVersion: 'security.istio.io/v1', namespace: 'my-app' };

const seedPolicy = makeResource(
  'AuthorizationPolicy',
  'product-service-policy',
  {
    selector: { matchLabels: { app: 'product-service' } },
    rules: [
      {
        from: [{ source: { principals: ['cluster.local/ns/my-app/sa/order-service'] } }],
        to: [{ operation: { methods: ['GET', 'POST'], paths: ['/api/products/*'] } }],
      },
      { to: [{ operation: { methods: ['GET'], paths: ['/health/*'] } }] },
    ],
  },
  SECURITY,
);

function peer(namespace: string, serviceAccount: string): PeerIdentity {
  const principal = `cluster.local/ns/${namespace}/sa/${serviceAccount}`;
  return { principal, trustDomain: 'cluster.local', namespace, serviceAccount, uri: `spiffe://${principal}`, certHash: '' };
}

/** What the core does: the one normaliser decides the path every plugin sees. */
function normalisedAttrs(mode: PathNormalization, identity: PeerIdentity | null) {
  const normalize = createNormalizer(mode);
  return (request: FastifyRequest): Partial<RequestAttributes> => {
    const target = normalize(request.raw.url ?? '/');
    if (!target.ok) throw new Error(target.reason);
    return { path: target.path, query: target.query, peer: identity };
  };
}

async function seedHarness(identity: PeerIdentity | null, mode: PathNormalization = 'BASE') {
  const harness = await buildPluginHarness({
    plugins: [authzPlugin],
    resources: [seedPolicy],
    workload: { namespace: 'my-app', labels: { app: 'product-service' } },
    attrs: normalisedAttrs(mode, identity),
  });
  t.teardown(() => harness.app.close());
  return harness.app;
}

t.test('seed policy: only order-service may GET/POST /api/products/*; anyone may GET /health/*', async (t) => {
  const orderService = await seedHarness(peer('my-app', 'order-service'));
  const stranger = await seedHarness(peer('my-app', 'frontend'));
  const plaintext = await seedHarness(null);

  t.equal((await orderService.inject({ method: 'GET', url: '/api/products/42' })).statusCode, 200);
  t.equal((await orderService.inject({ method: 'POST', url: '/api/products/42' })).statusCode, 200);
  t.equal((await orderService.inject({ method: 'DELETE', url: '/api/products/42' })).statusCode, 403);
  const denied = await stranger.inject({ method: 'GET', url: '/api/products/42' });
  t.equal(denied.statusCode, 403);
  t.equal(denied.body, 'RBAC: access denied\n');
  t.equal(denied.headers['x-meshgate-reason'], 'rbac_access_denied_matched_policy[none]; ALLOW policies tried: my-app/product-service-policy', 'an ALLOW miss names the policies tried');
  t.equal((await plaintext.inject({ method: 'GET', url: '/api/products/42' })).statusCode, 403, 'plaintext has no principal');
  t.equal((await plaintext.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
  t.equal((await plaintext.inject({ method: 'POST', url: '/health/ready' })).statusCode, 403);
  t.equal((await stranger.inject({ method: 'GET', url: '/other' })).statusCode, 403);
});

t.test('bypass: dot segments and encoded dots cannot escape /health/* into /api/products', async (t) => {
  const app = await seedHarness(null);
  for (const url of ['/health/../api/products/1', '/health/%2e%2e/api/products/1', '/health\\..\\api/products/1', '/health/./../api/products/1']) {
    const response = await app.inject({ method: 'GET', url });
    t.equal(response.statusCode, 403, url);
  }
});

t.test('bypass: fragments and query strings do not take part in path matching', async (t) => {
  const app = await seedHarness(null);
  t.equal((await app.inject({ method: 'GET', url: '/api/products/1?x=/health/a' })).statusCode, 403);
  t.equal((await app.inject({ method: 'GET', url: '/health/a?x=1' })).statusCode, 200);
});

t.test('bypass: a DENY on /admin is not bypassed by double or encoded slashes under DECODE_AND_MERGE_SLASHES', async (t) => {
  const deny = makeResource('AuthorizationPolicy', 'deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }, SECURITY);
  const harness = await buildPluginHarness({
    plugins: [authzPlugin],
    resources: [deny],
    workload: { namespace: 'my-app' },
    attrs: normalisedAttrs('DECODE_AND_MERGE_SLASHES', null),
  });
  t.teardown(() => harness.app.close());
  for (const url of ['//admin', '/%2Fadmin', '/x/..%2Fadmin', '/%5cadmin', '/admin;x=1']) {
    const response = await harness.app.inject({ method: 'GET', url });
    t.equal(response.statusCode, 403, url);
    t.equal(response.headers['x-meshgate-reason'], 'rbac_access_denied_matched_policy[my-app/deny-admin]');
  }
  t.equal((await harness.app.inject({ method: 'GET', url: '/public' })).statusCode, 200);
});

t.test('CUSTOM: external authorizer allows (adding upstream headers), denies with its status, fails closed or open', async (t) => {
  const seen: string[] = [];
  const authorizer = createServer((request, response) => {
    seen.push(`${request.method} ${request.url} ${request.headers['x-forwarded-host'] ?? ''}`);
    // Never answered: only the provider's timeout ends these checks, however slow the machine.
    if (request.url?.startsWith('/check/slow')) return;
    if (request.headers['authorization'] === 'let-me-in') {
      response.writeHead(200, { 'x-user': 'alice' }).end();
      return;
    }
    response.writeHead(401, { 'x-why': 'no' }).end('go away');
  });
  await new Promise<void>((resolve) => authorizer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    authorizer.closeAllConnections();
    authorizer.close();
  });
  const port = (authorizer.address() as AddressInfo).port;
  // Answers must beat the timeout on a loaded machine, so it is generous; the never-answered `/slow`
  // checks show it ends them all the same.
  const provider = (name: string, failOpen: boolean) => ({
    name,
    envoyExtAuthzHttp: {
      service: '127.0.0.1',
      port,
      timeout: '3s',
      pathPrefix: '/check',
      failOpen,
      headersToUpstreamOnAllow: ['x-user'],
      headersToDownstreamOnDeny: ['x-why'],
    },
  });
  const meshConfig = makeResource('MeshConfig', 'mesh', { extensionProviders: [provider('authz-closed', false), provider('authz-open', true)] }, { apiVersion: 'meshgate.dev/v1alpha1' });
  const custom = (name: string, providerName: string, paths: string[]) =>
    makeResource('AuthorizationPolicy', name, { action: 'CUSTOM', provider: { name: providerName }, rules: [{ to: [{ operation: { paths } }] }] }, SECURITY);
  const harness = await buildPluginHarness({
    plugins: [authzPlugin],
    resources: [meshConfig, custom('ext', 'authz-closed', ['/private*']), custom('ext-open', 'authz-open', ['/slow-open*'])],
    workload: { namespace: 'my-app' },
  });
  t.teardown(() => harness.app.close());
  const app = harness.app;

  const allowed = await app.inject({ method: 'GET', url: '/private/x?q=1', headers: { authorization: 'let-me-in', host: 'shop.example' } });
  t.equal(allowed.statusCode, 200);
  t.equal((allowed.json() as { headers: Record<string, string> }).headers['x-user'], 'alice');
  t.ok(seen.includes('GET /check/private/x?q=1 shop.example'));

  const denied = await app.inject({ method: 'GET', url: '/private/x' });
  t.equal(denied.statusCode, 401);
  t.equal(denied.body, 'go away\n');
  t.equal(denied.headers['x-why'], 'no');
  t.equal(denied.headers['x-meshgate-reason'], 'UAEX ext_authz_denied[my-app/ext]');

  t.equal((await app.inject({ method: 'GET', url: '/public' })).statusCode, 200, 'CUSTOM rules not matched: no call');

  const slowClosed = await buildPluginHarness({
    plugins: [authzPlugin],
    resources: [meshConfig, custom('ext', 'authz-closed', ['/slow*'])],
    workload: { namespace: 'my-app' },
  });
  t.teardown(() => slowClosed.app.close());
  const timedOut = await slowClosed.app.inject({ method: 'GET', url: '/slow' });
  t.equal(timedOut.statusCode, 403, 'timeout fails closed with 403');
  t.equal(timedOut.headers['x-meshgate-reason'], 'UAEX ext_authz_error[my-app/ext]');
  const openResponse = await app.inject({ method: 'GET', url: '/slow-open' });
  t.equal(openResponse.statusCode, 200, 'failOpen: a slow authorizer lets the request through');
});
