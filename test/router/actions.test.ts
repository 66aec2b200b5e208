import t from 'tap';
import type { HTTPRoute } from '../../gateway/config/kinds/virtual-service.js';
import { ISTIO_DEFAULT_RETRY_POLICY } from '../../gateway/router/retry-policy.js';
import type { CompiledRoute, ForwardAction, MutableHeaders, RouteRequest } from '../../gateway/router/types.js';
import { meshTable, mustRoute, request, seededRandom, virtualService } from './support.js';

function routeFor(rule: HTTPRoute, req: RouteRequest = request('http://svc/')): CompiledRoute {
  return mustRoute(meshTable([virtualService('vs', { hosts: ['svc', '*'], http: [rule] })]), req);
}

function forward(route: CompiledRoute): ForwardAction {
  if (route.action.kind !== 'forward') throw new Error(`expected forward, got ${route.action.kind}`);
  return route.action;
}

function rewritten(rule: HTTPRoute, url: string): string | null {
  const req = request(url);
  const route = routeFor(rule, req);
  return route.rewrite.path === null ? null : route.rewrite.path(req);
}

function location(rule: HTTPRoute, url: string, port?: number): string {
  const req = request(url, port !== undefined ? { port } : {});
  const route = routeFor(rule, req);
  if (route.action.kind !== 'redirect') throw new Error('expected a redirect');
  return route.action.location(req);
}

t.test('weights: a single destination gets 100 % whatever its weight', async (t) => {
  const action = forward(routeFor({ route: [{ destination: { host: 'a' }, weight: 0 }] }));
  for (const random of [0, 0.5, 0.999]) t.equal(action.pick(random).host, 'a');
});

t.test('weights: omitted weight in a multi-destination route is 0 — [{A},{B,weight:50}] sends all to B', async (t) => {
  const action = forward(routeFor({ route: [{ destination: { host: 'A' } }, { destination: { host: 'B' }, weight: 50 }] }));
  for (const random of [0, 0.25, 0.5, 0.999]) t.equal(action.pick(random).host, 'B');
  t.same(action.destinations.map((d) => d.host), ['B']);
});

t.test('weights are relative and need not sum to 100', async (t) => {
  const action = forward(
    routeFor({ route: [{ destination: { host: 'a' }, weight: 1 }, { destination: { host: 'b' }, weight: 3 }] }),
  );
  t.equal(action.pick(0.24).host, 'a');
  t.equal(action.pick(0.25).host, 'b');
  t.equal(action.pick(0.9999).host, 'b');
});

t.test('seed canary: 10 000 picks of the 90/10 route land within ±2 % (seeded PRNG)', async (t) => {
  const table = meshTable([
    virtualService('product-service', {
      hosts: ['product-service'],
      http: [
        { match: [{ headers: { 'x-canary': { exact: 'true' } } }], route: [{ destination: { host: 'product-service', subset: 'v2' } }] },
        {
          route: [
            { destination: { host: 'product-service', subset: 'v1' }, weight: 90 },
            { destination: { host: 'product-service', subset: 'v2' }, weight: 10 },
          ],
          retries: { attempts: 3, perTryTimeout: '2s', retryOn: 'connect-failure,refused-stream,5xx' },
          timeout: '10s',
        },
      ],
    }),
  ]);
  const canary = mustRoute(table, request('http://product-service/', { headers: { 'x-canary': 'true' } }));
  t.equal(forward(canary).pick(0.99).subset, 'v2');
  const route = mustRoute(table, request('http://product-service/'));
  const action = forward(route);
  const random = seededRandom(20240601);
  let v2 = 0;
  const picks = 10_000;
  for (let i = 0; i < picks; i++) if (action.pick(random()).subset === 'v2') v2++;
  t.ok(Math.abs(v2 / picks - 0.1) <= 0.02, `v2 share ${(v2 / picks).toFixed(4)}`);
  t.equal(route.timeoutMs, 10_000);
  t.equal(route.retry.attempts, 3);
  t.equal(route.retry.perTryTimeoutMs, 2000);
  t.same([...route.retry.retryOn].sort(), ['5xx', 'connect-failure', 'refused-stream']);
});

t.test('rewrite.uri replaces the matched prefix and keeps the query (/ratings/123?x=1 → /v1/bookRatings/123?x=1)', async (t) => {
  const rule: HTTPRoute = { match: [{ uri: { prefix: '/ratings' } }], rewrite: { uri: '/v1/bookRatings' }, route: [{ destination: { host: 'r' } }] };
  t.equal(rewritten(rule, 'http://svc/ratings/123?x=1'), '/v1/bookRatings/123?x=1');
});

t.test('rewrite.uri on a catch-all replaces "/" (/v1 + /foo → /v1foo)', async (t) => {
  t.equal(rewritten({ rewrite: { uri: '/v1' }, route: [{ destination: { host: 'r' } }] }, 'http://svc/foo'), '/v1foo');
});

t.test('rewrite.uri: trailing slashes matter (prefix /foo/ + uri / maps /foo/bar → /bar)', async (t) => {
  const rule: HTTPRoute = { match: [{ uri: { prefix: '/foo/' } }], rewrite: { uri: '/' }, route: [{ destination: { host: 'r' } }] };
  t.equal(rewritten(rule, 'http://svc/foo/bar'), '/bar');
});

t.test('rewrite.uri with an exact or regex match replaces the whole path, query kept', async (t) => {
  const exact: HTTPRoute = { match: [{ uri: { exact: '/old' } }], rewrite: { uri: '/new' }, route: [{ destination: { host: 'r' } }] };
  t.equal(rewritten(exact, 'http://svc/old?a=1'), '/new?a=1');
  const regex: HTTPRoute = { match: [{ uri: { regex: '/o.d' } }], rewrite: { uri: '/new' }, route: [{ destination: { host: 'r' } }] };
  t.equal(rewritten(regex, 'http://svc/old'), '/new');
});

t.test('uriRegexRewrite substitutes \\1 captures (^/service/([^/]+)(/.*)$ → /customprefix/\\2/\\1)', async (t) => {
  const rule: HTTPRoute = {
    rewrite: { uriRegexRewrite: { match: '^/service/([^/]+)(/.*)$', rewrite: '/customprefix\\2/\\1' } },
    route: [{ destination: { host: 'r' } }],
  };
  t.equal(rewritten(rule, 'http://svc/service/foo/v1/api?x=1'), '/customprefix/v1/api/foo?x=1');
  t.equal(rewritten(rule, 'http://svc/other'), null, 'no match: not rewritten (no x-envoy-original-path)');
});

t.test('no rewrite configured: path function is null', async (t) => {
  t.equal(routeFor({ route: [{ destination: { host: 'r' } }] }).rewrite.path, null);
});

t.test('authority rewrite from rewrite.authority or a host/:authority header set', async (t) => {
  t.equal(routeFor({ rewrite: { authority: 'up.internal' }, route: [{ destination: { host: 'r' } }] }).rewrite.authority, 'up.internal');
  const viaHeader = routeFor({ headers: { request: { set: { Host: 'h.internal' } } }, route: [{ destination: { host: 'r' } }] });
  t.equal(viaHeader.rewrite.authority, 'h.internal');
  const headers: MutableHeaders = { host: 'svc' };
  viaHeader.requestHeaders.apply(headers);
  t.same(headers, { host: 'svc' }, 'host is not written as a header');
  const perDestination = routeFor({ route: [{ destination: { host: 'r' }, headers: { request: { set: { ':authority': 'd.internal' } } } }] });
  t.equal(forward(perDestination).pick(0).authorityRewrite, 'd.internal');
});

t.test('redirect: uri replaces the whole path, query kept; default 301', async (t) => {
  const route = routeFor({ match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new' } }, request('http://svc/old/x'));
  t.equal(route.action.kind === 'redirect' ? route.action.status : 0, 301);
  t.equal(location({ match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new' } }, 'http://svc/old/x?a=1'), 'http://svc/new?a=1');
  t.equal(location({ redirect: { uri: '/new?b=2' } }, 'http://svc/x?a=1'), 'http://svc/new?b=2', 'uri with its own query');
});

t.test('redirect: prefixRewrite replaces the matched prefix (/foo + /bar: /foo/baz → /bar/baz; / → //baz)', async (t) => {
  t.equal(location({ match: [{ uri: { prefix: '/foo' } }], redirect: { prefixRewrite: '/bar' } }, 'http://svc/foo/baz'), 'http://svc/bar/baz');
  t.equal(location({ match: [{ uri: { prefix: '/foo' } }], redirect: { prefixRewrite: '/' } }, 'http://svc/foo/baz'), 'http://svc//baz');
});

t.test('redirect codes: 301/302/303/307/308', async (t) => {
  for (const code of [302, 303, 307, 308]) {
    const route = routeFor({ redirect: { uri: '/x', redirectCode: code } });
    t.equal(route.action.kind === 'redirect' ? route.action.status : 0, code);
  }
});

t.test('redirect port rules', async (t) => {
  t.equal(location({ redirect: { uri: '/x' } }, 'http://svc:8080/'), 'http://svc:8080/x', 'request Host reused with its port');
  t.equal(location({ redirect: { authority: 'svc.example.com' } }, 'http://svc:8080/p'), 'http://svc.example.com/p', 'authority drops the request port');
  t.equal(location({ redirect: { authority: 'svc.example.com', port: 9000 } }, 'http://svc:8080/p'), 'http://svc.example.com:9000/p');
  t.equal(location({ redirect: { scheme: 'https' } }, 'http://svc/p'), 'https://svc/p', 'scheme changed');
  t.equal(location({ redirect: { scheme: 'https' } }, 'http://svc:80/p'), 'https://svc/p', 'default port of the old scheme dropped');
  t.equal(location({ redirect: { scheme: 'https' } }, 'http://svc:443/p'), 'https://svc/p', 'default port of the new scheme dropped');
  t.equal(location({ redirect: { scheme: 'https' } }, 'http://svc:8080/p'), 'https://svc:8080/p');
  t.equal(location({ redirect: { port: 443, scheme: 'https' } }, 'http://svc:8080/p'), 'https://svc/p', ':443 never written on https');
  t.equal(location({ redirect: { port: 80 } }, 'http://svc:8080/p'), 'http://svc/p', ':80 never written on http');
  t.equal(location({ redirect: { port: 8443, scheme: 'https' } }, 'http://svc/p'), 'https://svc:8443/p');
  t.equal(location({ redirect: { derivePort: 'FROM_PROTOCOL_DEFAULT', scheme: 'https' } }, 'http://svc:8080/p'), 'https://svc/p');
  t.equal(location({ redirect: { derivePort: 'FROM_REQUEST_PORT', authority: 'b.com' } }, 'http://svc:8080/p', 8080), 'http://b.com:8080/p');
  t.equal(location({ redirect: { derivePort: 'FROM_REQUEST_PORT', authority: 'b.com' } }, 'http://svc/p', 80), 'http://b.com/p');
  t.equal(location({ redirect: { uri: '/x' } }, 'http://[::1]:8080/p'), 'http://[::1]:8080/x', 'IPv6 authority');
});

t.test('directResponse: status and body (string or base64 bytes; none = empty)', async (t) => {
  const text = routeFor({ directResponse: { status: 503, body: { string: 'down' } } }).action;
  t.same(text.kind === 'direct-response' ? [text.status, text.body.toString()] : [], [503, 'down']);
  const bytes = routeFor({ directResponse: { status: 200, body: { bytes: Buffer.from('hi').toString('base64') } } }).action;
  t.equal(bytes.kind === 'direct-response' ? bytes.body.toString() : '', 'hi');
  const empty = routeFor({ directResponse: { status: 204 } }).action;
  t.equal(empty.kind === 'direct-response' ? empty.body.length : -1, 0);
});

t.test('header operations: remove before set/add; add appends; destination ops apply after route ops', async (t) => {
  const route = routeFor({
    headers: {
      request: { remove: ['x-remove', 'x-set'], set: { 'X-Set': 'route' }, add: { 'x-add': 'two' } },
      response: { set: { 'x-resp': '1' }, remove: ['server'] },
    },
    route: [{ destination: { host: 'a' }, headers: { request: { set: { 'x-set': 'destination' } } } }],
  });
  const headers: MutableHeaders = { 'x-remove': '1', 'x-set': 'client', 'x-add': 'one' };
  route.requestHeaders.apply(headers);
  forward(route).pick(0).requestHeaders.apply(headers);
  t.same(headers, { 'x-set': 'destination', 'x-add': ['one', 'two'] });
  const response: MutableHeaders = { server: 'app', 'content-length': 5 };
  route.responseHeaders.apply(response);
  t.same(response, { 'content-length': 5, 'x-resp': '1' });
  t.ok(routeFor({ route: [{ destination: { host: 'a' } }] }).requestHeaders.isEmpty);
});

t.test('retries: absent ⇒ Istio default policy (2 attempts, no 503)', async (t) => {
  const retry = routeFor({ route: [{ destination: { host: 'a' } }] }).retry;
  t.equal(retry, ISTIO_DEFAULT_RETRY_POLICY);
  t.equal(retry.retriableStatusCodes.size, 0);
});

t.test('retries: attempts only ⇒ default retryOn; integers become retriable status codes; backoff; attempts 0 disables', async (t) => {
  const attemptsOnly = routeFor({ retries: { attempts: 5 }, route: [{ destination: { host: 'a' } }] }).retry;
  t.equal(attemptsOnly.attempts, 5);
  t.same([...attemptsOnly.retryOn].sort(), [...ISTIO_DEFAULT_RETRY_POLICY.retryOn].sort());
  t.equal(attemptsOnly.backoffBaseMs, 25);
  t.equal(attemptsOnly.backoffMaxMs, 250);
  t.equal(attemptsOnly.retryIgnorePreviousHosts, true);
  const codes = routeFor({
    retries: { attempts: 2, retryOn: 'gateway-error,503, 409', backoff: '100ms', retryIgnorePreviousHosts: false },
    route: [{ destination: { host: 'a' } }],
  }).retry;
  t.same([...codes.retryOn].sort(), ['gateway-error', 'retriable-status-codes']);
  t.same([...codes.retriableStatusCodes].sort(), [409, 503]);
  t.equal(codes.backoffMaxMs, 1000);
  t.equal(codes.retryIgnorePreviousHosts, false);
  t.equal(routeFor({ retries: { attempts: 0 }, route: [{ destination: { host: 'a' } }] }).retry.attempts, 0);
});

t.test('timeout: absent or 0s = none', async (t) => {
  t.equal(routeFor({ route: [{ destination: { host: 'a' } }] }).timeoutMs, 0);
  t.equal(routeFor({ timeout: '0s', route: [{ destination: { host: 'a' } }] }).timeoutMs, 0);
  t.equal(routeFor({ timeout: '1.5s', route: [{ destination: { host: 'a' } }] }).timeoutMs, 1500);
});

t.test('fault: percentage omitted ⇒ 0 %; deprecated delay.percent used only without percentage', async (t) => {
  const omitted = routeFor({ fault: { delay: { fixedDelay: '5s' }, abort: { httpStatus: 503 } }, route: [{ destination: { host: 'a' } }] }).fault;
  t.same(omitted, { delay: { ms: 5000, fraction: 0 }, abort: { httpStatus: 503, fraction: 0 } });
  const set = routeFor({
    fault: { delay: { fixedDelay: '10ms', percentage: { value: 50 }, percent: 10 }, abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 0.1 } } },
    route: [{ destination: { host: 'a' } }],
  }).fault;
  t.same(set, { delay: { ms: 10, fraction: 0.5 }, abort: { grpcStatus: 'UNAVAILABLE', fraction: 0.001 } });
  const legacy = routeFor({ fault: { delay: { fixedDelay: '1s', percent: 30 } }, route: [{ destination: { host: 'a' } }] }).fault;
  t.equal(legacy?.delay?.fraction, 0.3);
  t.equal(routeFor({ route: [{ destination: { host: 'a' } }] }).fault, null);
});

t.test('mirrors: percentage absent ⇒ 100 %, explicit 0 ⇒ none', async (t) => {
  const single = routeFor({ mirror: { host: 'shadow', subset: 'v2' }, route: [{ destination: { host: 'a' } }] }).mirrors;
  t.same(single, [{ destination: { host: 'shadow', subset: 'v2' }, fraction: 1 }]);
  const zero = routeFor({ mirror: { host: 'shadow' }, mirrorPercentage: { value: 0 }, route: [{ destination: { host: 'a' } }] }).mirrors;
  t.same(zero, []);
  const many = routeFor({
    mirrors: [{ destination: { host: 'm1' } }, { destination: { host: 'm2', port: { number: 8080 } }, percentage: { value: 25 } }],
    route: [{ destination: { host: 'a' } }],
  }).mirrors;
  t.same(many, [
    { destination: { host: 'm1' }, fraction: 1 },
    { destination: { host: 'm2', port: 8080 }, fraction: 0.25 },
  ]);
});

t.test('CORS: matching preflight answered locally; actual requests forwarded, headers only when origin matches', async (t) => {
  const route = routeFor({
    corsPolicy: {
      allowOrigins: [{ exact: 'https://app.example.com' }, { regex: 'https://.*\\.trusted\\.io' }],
      allowMethods: ['GET', 'POST'],
      allowHeaders: ['x-token'],
      exposeHeaders: ['x-trace'],
      maxAge: '24h',
      allowCredentials: true,
    },
    route: [{ destination: { host: 'a' } }],
  });
  const cors = route.cors;
  if (cors === null) throw new Error('expected cors');
  const preflight = (origin: string) =>
    request('http://svc/', { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
  t.same(cors.decide(preflight('https://app.example.com')), {
    kind: 'preflight',
    headers: {
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET,POST',
      'access-control-allow-headers': 'x-token',
      'access-control-max-age': '86400',
    },
  });
  t.same(cors.decide(preflight('https://evil.com')), { kind: 'forward', responseHeaders: {} }, 'unmatched preflight forwarded');
  t.same(cors.decide(request('http://svc/', { headers: { origin: 'https://a.trusted.io' } })), {
    kind: 'forward',
    responseHeaders: {
      'access-control-allow-origin': 'https://a.trusted.io',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-trace',
    },
  });
  t.same(cors.decide(request('http://svc/', { headers: { origin: 'https://evil.com' } })), { kind: 'forward', responseHeaders: {} });
  t.same(cors.decide(request('http://svc/')), { kind: 'forward', responseHeaders: {} }, 'no Origin: not CORS');
  t.equal(routeFor({ route: [{ destination: { host: 'a' } }] }).cors, null);
});

t.test('CORS: unmatchedPreflights IGNORE answers unmatched preflights without Allow-Origin', async (t) => {
  const cors = routeFor({
    corsPolicy: { allowOrigins: [{ exact: 'https://ok.com' }], allowMethods: ['GET'], unmatchedPreflights: 'IGNORE' },
    route: [{ destination: { host: 'a' } }],
  }).cors;
  const decision = cors?.decide(request('http://svc/', { method: 'OPTIONS', headers: { origin: 'https://no.com', 'access-control-request-method': 'GET' } }));
  t.same(decision, { kind: 'preflight', headers: { 'access-control-allow-methods': 'GET' } });
});
