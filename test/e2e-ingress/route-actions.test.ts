/**
 * VirtualService route actions through the real gateway (docs/routing.md#rewrite): rewrites,
 * redirect, direct response, header operations, fault injection, mirroring and the route timeout.
 * The router's compiled forms are unit-tested in test/router; here the point is what the upstream
 * and the client actually see on the wire.
 */
import type { ServerResponse } from 'node:http';
import t from 'tap';
import { startUpstream } from '../helpers/gateway.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, request, serviceEntryYaml, sleep, startScenario, virtualServiceYaml } from './support.js';

const app = await startUpstream((req, res) => {
  req.resume();
  if (req.url === '/hang') return;
  res.setHeader('content-type', 'application/json');
  res.setHeader('x-upstream-secret', 'internal');
  res.setHeader('x-upstream-version', '1');
  res.end(JSON.stringify({ url: req.url, headers: req.headers }));
}, 'app');
const shadowResponses: ServerResponse[] = [];
const shadow = await startUpstream((req, res) => {
  req.resume();
  // A mirror that never answers must never hold up the client's response.
  shadowResponses.push(res);
}, 'shadow');
t.teardown(() => Promise.all([app.close(), shadow.close()]));

const [admin = 0, port = 0] = await freePorts(2);
const rules = `    - match: [{uri: {prefix: /api/v1/}}]
      rewrite: {uri: /v2/}
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /service/}}]
      rewrite:
        uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\\\2/instance/\\\\1"}
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /authority}}]
      rewrite: {authority: backend.internal}
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /old}}]
      redirect: {uri: /new, redirectCode: 302}
    - match: [{uri: {exact: /teapot}}]
      directResponse: {status: 418, body: {string: "short and stout"}}
      headers:
        response:
          set: {content-type: text/plain}
    - match: [{uri: {prefix: /headers}}]
      headers:
        request:
          set: {x-set: route}
          add: {x-added: one}
          remove: [x-remove-me]
        response:
          set: {x-upstream-version: "2"}
          add: {x-served-by: meshgate}
          remove: [x-upstream-secret]
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /abort}}]
      fault:
        abort: {httpStatus: 418, percentage: {value: 100}}
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /delay}}]
      fault:
        delay: {fixedDelay: 300ms, percentage: {value: 100}}
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /mirror}}]
      route: [{destination: {host: app.internal}}]
      mirror: {host: shadow.internal}
    - match: [{uri: {prefix: /hang}}]
      timeout: 200ms
      route: [{destination: {host: app.internal}}]
    - match: [{uri: {prefix: /cors}}]
      corsPolicy:
        allowOrigins: [{exact: "https://shop.example.com"}]
        allowMethods: [GET]
        exposeHeaders: [x-upstream-version]
      route: [{destination: {host: app.internal}}]
`;

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', httpServerYaml(port, ['*'])),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    serviceEntryYaml('shadow', 'shadow.internal', [{ port: shadow.port }]),
    virtualServiceYaml('actions', ['actions.example.com'], 'edge', rules),
  ].join('\n'),
);

interface Echo {
  readonly url: string;
  readonly headers: Record<string, string>;
}

async function echo(path: string, headers: Record<string, string> = {}): Promise<Echo> {
  const res = await request(port, path, { host: 'actions.example.com', headers });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as Echo;
}

t.test('prefix rewrite keeps the query; the original path travels in x-envoy-original-path', async (t) => {
  const seen = await echo('/api/v1/items/7?sort=asc');
  t.equal(seen.url, '/v2/items/7?sort=asc');
  t.equal(seen.headers['x-envoy-original-path'], '/api/v1/items/7?sort=asc', "Envoy's original :path, query included");
});

t.test('uriRegexRewrite substitutes capture groups', async (t) => {
  const seen = await echo('/service/orders/list/all');
  t.equal(seen.url, '/list/all/instance/orders');
  t.equal(seen.headers['x-envoy-original-path'], '/service/orders/list/all');
});

t.test('authority rewrite changes the Host sent upstream, not the path', async (t) => {
  const seen = await echo('/authority/x');
  t.equal(seen.headers.host, 'backend.internal');
  t.equal(seen.url, '/authority/x');
  t.notOk(seen.headers['x-envoy-original-path'], 'no path rewrite, no original path');
});

t.test('redirect answers locally with the configured code and keeps the query', async (t) => {
  const before = app.received.length;
  const res = await request(port, '/old/page?q=1', { host: 'actions.example.com' });
  t.equal(res.status, 302);
  t.equal(res.headers.location, 'http://actions.example.com/new?q=1');
  t.equal(res.body, '');
  t.equal(app.received.length, before, 'the upstream is not contacted');
});

t.test('directResponse with response header operations', async (t) => {
  const res = await request(port, '/teapot', { host: 'actions.example.com' });
  t.equal(res.status, 418);
  t.equal(res.body, 'short and stout');
  t.equal(res.headers['content-type'], 'text/plain');
});

t.test('request and response header operations', async (t) => {
  const res = await request(port, '/headers', { host: 'actions.example.com', headers: { 'x-set': 'client', 'x-added': 'zero', 'x-remove-me': 'yes' } });
  const seen = JSON.parse(res.body) as Echo;
  t.equal(seen.headers['x-set'], 'route', 'set overwrites');
  t.equal(seen.headers['x-added'], 'zero, one', 'add appends');
  t.notOk(seen.headers['x-remove-me']);
  t.equal(res.headers['x-upstream-version'], '2');
  t.equal(res.headers['x-served-by'], 'meshgate');
  t.notOk(res.headers['x-upstream-secret']);
});

t.test('CORS headers decided before forwarding are sent with the relayed upstream response', async (t) => {
  const res = await request(port, '/cors/items', { host: 'actions.example.com', headers: { origin: 'https://shop.example.com' } });
  t.equal(res.status, 200);
  t.equal(JSON.parse(res.body).url, '/cors/items', 'the upstream answered');
  t.equal(res.headers['access-control-allow-origin'], 'https://shop.example.com');
  t.equal(res.headers['access-control-expose-headers'], 'x-upstream-version');
  t.equal(res.headers['x-upstream-version'], '1', 'and the upstream headers');
  t.match(res.headers['x-envoy-upstream-service-time'], /^\d+$/);
});

t.test('fault abort: configured status, Envoy body, flag FI, upstream untouched', async (t) => {
  const before = app.received.length;
  const res = await request(port, '/abort', { host: 'actions.example.com' });
  t.equal(res.status, 418);
  t.equal(res.body, 'fault filter abort\n');
  t.equal(res.headers['x-meshgate-reason'], 'FI fault_filter_abort');
  t.equal(app.received.length, before);
});

t.test('fault delay holds the request, then forwards it', async (t) => {
  const started = performance.now();
  const seen = await echo('/delay');
  t.ok(performance.now() - started >= 290, 'delayed by fixedDelay');
  t.equal(seen.url, '/delay');
});

t.test('mirror: the shadow gets a -shadow copy and a shadow that never answers does not hold up the client', async (t) => {
  const seen = await echo('/mirror/x?y=1');
  t.equal(seen.headers.host, 'actions.example.com');
  for (let waited = 0; shadow.received.length === 0 && waited < 20_000; waited += 20) await sleep(20);
  const copy = shadow.received[0];
  t.equal(copy?.url, '/mirror/x?y=1');
  t.equal(copy?.headers.host, 'actions.example.com-shadow');
  t.equal(copy?.headers['x-request-id'], seen.headers['x-request-id'], 'the copy carries the same request id');
});

t.test('route timeout: 504 UT with Envoy body', async (t) => {
  const started = performance.now();
  const res = await request(port, '/hang', { host: 'actions.example.com' });
  const elapsed = performance.now() - started;
  t.equal(res.status, 504);
  t.equal(res.body, 'upstream request timeout\n');
  t.equal(res.headers['x-meshgate-reason'], 'UT upstream_response_timeout');
  t.ok(elapsed >= 190 && elapsed < 1000, `after ${Math.round(elapsed)} ms`);
});
