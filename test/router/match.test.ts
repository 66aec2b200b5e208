import t from 'tap';
import type { HTTPMatchRequest } from '../../gateway/config/kinds/virtual-service.js';
import type { RouteRequest } from '../../gateway/router/types.js';
import { meshTable, request, routed, virtualService } from './support.js';

const SVC = 'http://svc';

/** Does a single rule with this one match block route the request? */
function matches(match: HTTPMatchRequest, req: RouteRequest, options: { port?: number; labels?: Record<string, string> } = {}): boolean {
  const table = meshTable(
    [virtualService('vs', { hosts: ['svc', 'svc.example.com'], http: [{ match: [match], route: [{ destination: { host: 'svc' } }] }] })],
    options,
  );
  return routed(table, req) === 'default/vs.0';
}

t.test('uri prefix is a character prefix, not a path segment (/api matches /apix)', async (t) => {
  t.ok(matches({ uri: { prefix: '/api' } }, request(`${SVC}/apix`)));
  t.ok(matches({ uri: { prefix: '/api' } }, request(`${SVC}/api/v1`)));
  t.notOk(matches({ uri: { prefix: '/api' } }, request(`${SVC}/ap`)));
});

t.test('uri exact compares the path without the query string', async (t) => {
  t.ok(matches({ uri: { exact: '/a' } }, request(`${SVC}/a?x=1`)));
  t.notOk(matches({ uri: { exact: '/a' } }, request(`${SVC}/a/b`)));
  t.notOk(matches({ uri: { exact: '/a' } }, request(`${SVC}/A`)));
});

t.test('uri regex is an RE2 full match on the path without query', async (t) => {
  t.ok(matches({ uri: { regex: '/users/\\d+' } }, request(`${SVC}/users/42?x=1`)));
  t.notOk(matches({ uri: { regex: '/users/\\d+' } }, request(`${SVC}/users/42/x`)), 'not a substring search');
  t.notOk(matches({ uri: { regex: '\\d+' } }, request(`${SVC}/x1`)));
  t.ok(matches({ uri: { regex: '(?i)/ADMIN' } }, request(`${SVC}/admin`)), '(?i) is supported');
});

t.test('ignoreUriCase applies to exact and prefix, never to regex', async (t) => {
  t.ok(matches({ uri: { exact: '/Login' }, ignoreUriCase: true }, request(`${SVC}/LOGIN`)));
  t.ok(matches({ uri: { prefix: '/API' }, ignoreUriCase: true }, request(`${SVC}/api/x`)));
  t.notOk(matches({ uri: { regex: '/login' }, ignoreUriCase: true }, request(`${SVC}/LOGIN`)));
});

t.test('scheme and method are case-sensitive string matches', async (t) => {
  t.ok(matches({ scheme: { exact: 'https' } }, request('https://svc/')));
  t.notOk(matches({ scheme: { exact: 'https' } }, request('http://svc/')));
  t.ok(matches({ method: { exact: 'POST' } }, request(`${SVC}/`, { method: 'POST' })));
  t.notOk(matches({ method: { exact: 'post' } }, request(`${SVC}/`, { method: 'POST' })));
  t.ok(matches({ method: { regex: 'GET|HEAD' } }, request(`${SVC}/`, { method: 'HEAD' })));
});

t.test('authority sees the port: exact example.com does not match example.com:8080', async (t) => {
  t.ok(matches({ authority: { exact: 'svc.example.com' } }, request('http://svc.example.com/')));
  t.notOk(matches({ authority: { exact: 'svc.example.com' } }, request('http://svc.example.com:8080/')));
  t.ok(matches({ authority: { prefix: 'svc.example.com' } }, request('http://svc.example.com:8080/')));
});

t.test('headers: exact/prefix/regex, presence {}, regex "*", repeated headers comma-joined', async (t) => {
  const headers = (h: Record<string, string | string[]>) => request(`${SVC}/`, { headers: h });
  t.ok(matches({ headers: { 'x-canary': { exact: 'true' } } }, headers({ 'x-canary': 'true' })));
  t.notOk(matches({ headers: { 'x-canary': { exact: 'true' } } }, headers({})));
  t.ok(matches({ headers: { 'x-user': { prefix: 'adm' } } }, headers({ 'x-user': 'admin' })));
  t.ok(matches({ headers: { 'x-id': { regex: '[0-9]+' } } }, headers({ 'x-id': '123' })));
  t.notOk(matches({ headers: { 'x-id': { regex: '[0-9]+' } } }, headers({ 'x-id': 'a123' })));
  t.ok(matches({ headers: { 'x-flag': {} } }, headers({ 'x-flag': '' })), '{} = present, even empty');
  t.notOk(matches({ headers: { 'x-flag': {} } }, headers({})));
  t.ok(matches({ headers: { 'x-flag': { regex: '*' } } }, headers({ 'x-flag': 'v' })), 'regex "*" = present');
  t.ok(matches({ headers: { 'x-multi': { exact: 'a,b' } } }, headers({ 'x-multi': ['a', 'b'] })));
  t.ok(matches({ headers: { 'X-Canary': { exact: 'true' } } }, headers({ 'x-canary': 'true' })), 'keys are lower-cased');
});

t.test('header keys uri, scheme, method and authority are ignored', async (t) => {
  t.ok(matches({ headers: { method: { exact: 'POST' }, uri: { exact: '/nope' } } }, request(`${SVC}/x`)));
});

t.test('@request.auth.claims header keys match validated JWT claims', async (t) => {
  const claims = { iss: 'issuer', groups: ['dev', 'ops'], nested: { role: 'admin' }, n: 7 };
  const withClaims = request(`${SVC}/`, { claims });
  t.ok(matches({ headers: { '@request.auth.claims.iss': { exact: 'issuer' } } }, withClaims));
  t.ok(matches({ headers: { '@request.auth.claims.groups': { exact: 'ops' } } }, withClaims), 'list claim: any element');
  t.ok(matches({ headers: { '@request.auth.claims.nested.role': { exact: 'admin' } } }, withClaims));
  t.ok(matches({ headers: { '@request.auth.claims[nested][role]': { prefix: 'adm' } } }, withClaims));
  t.notOk(matches({ headers: { '@request.auth.claims.n': { exact: '7' } } }, withClaims), 'non-string claims never match');
  t.notOk(matches({ headers: { '@request.auth.claims.iss': { exact: 'issuer' } } }, request(`${SVC}/`)), 'no claims');
  t.ok(matches({ withoutHeaders: { '@request.auth.claims.groups': { exact: 'admin' } } }, withClaims));
  t.notOk(matches({ withoutHeaders: { '@request.auth.claims.groups': { exact: 'dev' } } }, withClaims));
});

t.test('withoutHeaders: inverted; absent header counts as "" for value matchers; {} only when absent', async (t) => {
  const h = (headers: Record<string, string>) => request(`${SVC}/`, { headers });
  t.ok(matches({ withoutHeaders: { x: { exact: '1' } } }, h({})), 'absent header: condition not met → matches');
  t.notOk(matches({ withoutHeaders: { x: { exact: '1' } } }, h({ x: '1' })));
  t.ok(matches({ withoutHeaders: { x: { exact: '1' } } }, h({ x: '2' })));
  t.notOk(matches({ withoutHeaders: { x: { exact: '' } } }, h({})), 'absent is the empty string');
  t.ok(matches({ withoutHeaders: { x: {} } }, h({})));
  t.notOk(matches({ withoutHeaders: { x: {} } }, h({ x: '' })));
});

t.test('queryParams: first occurrence, exact "" matches ?key and ?key=, regex full match, {} presence', async (t) => {
  t.ok(matches({ queryParams: { id: { regex: '\\d+$' } } }, request(`${SVC}/?id=123`)));
  t.notOk(matches({ queryParams: { id: { regex: '\\d+$' } } }, request(`${SVC}/?id=a123`)));
  t.ok(matches({ queryParams: { debug: { exact: '' } } }, request(`${SVC}/?debug`)));
  t.ok(matches({ queryParams: { debug: { exact: '' } } }, request(`${SVC}/?debug=`)));
  t.notOk(matches({ queryParams: { debug: { exact: '' } } }, request(`${SVC}/?debug=1`)));
  t.ok(matches({ queryParams: { v: { exact: '1' } } }, request(`${SVC}/?v=1&v=2`)), 'first occurrence');
  t.notOk(matches({ queryParams: { v: { exact: '2' } } }, request(`${SVC}/?v=1&v=2`)));
  t.ok(matches({ queryParams: { v: {} } }, request(`${SVC}/?a=1&v`)));
  t.notOk(matches({ queryParams: { v: {} } }, request(`${SVC}/?a=1`)), 'missing param never matches');
  t.ok(matches({ queryParams: { q: { exact: 'a b' } } }, request(`${SVC}/?q=a%20b`)), 'values are percent-decoded');
});

t.test('all conditions of a block are AND-ed', async (t) => {
  const block: HTTPMatchRequest = { uri: { prefix: '/a' }, method: { exact: 'GET' }, headers: { x: { exact: '1' } } };
  t.ok(matches(block, request(`${SVC}/a`, { headers: { x: '1' } })));
  t.notOk(matches(block, request(`${SVC}/a`, { headers: { x: '1' }, method: 'POST' })));
  t.notOk(matches(block, request(`${SVC}/b`, { headers: { x: '1' } })));
});

t.test('port is a selector: dropped at compile time on other listener ports', async (t) => {
  t.ok(matches({ port: 8080 }, request(`${SVC}/`), { port: 8080 }));
  t.notOk(matches({ port: 8080 }, request('http://svc:8080/'), { port: 9090 }), 'dropped even though the authority says 8080');
  t.ok(matches({ port: 8080 }, request('http://svc:8080/')), 'without a table port, the authority port decides');
  t.notOk(matches({ port: 8080 }, request('http://svc/')), 'authority without port = 80');
});

t.test('sourceLabels and sourceNamespace select the client proxy at compile time', async (t) => {
  t.ok(matches({ sourceLabels: { app: 'web' } }, request(`${SVC}/`), { labels: { app: 'web', v: '1' } }));
  t.notOk(matches({ sourceLabels: { app: 'web' } }, request(`${SVC}/`), { labels: { app: 'api' } }));
  t.ok(matches({ sourceNamespace: 'default' }, request(`${SVC}/`)));
  t.notOk(matches({ sourceNamespace: 'other' }, request(`${SVC}/`)));
});

t.test('match-level gateways override the top-level list', async (t) => {
  t.ok(matches({ gateways: ['mesh'] }, request(`${SVC}/`)));
  t.notOk(matches({ gateways: ['edge'] }, request(`${SVC}/`)), 'block for a gateway only is dropped on sidecars');
});

t.test('catastrophic regex (a+)+$ on a long aaaa…b path returns quickly (RE2, linear time)', async (t) => {
  const path = `/${'a'.repeat(100_000)}b`;
  const started = process.hrtime.bigint();
  t.notOk(matches({ uri: { regex: '/(a+)+$' } }, request(`${SVC}${path}`)));
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  t.ok(elapsedMs < 1000, `took ${elapsedMs.toFixed(1)} ms`);
});
