import t from 'tap';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { buildMeshRouteTable } from '../../gateway/router/mesh-table.js';
import { createRouteTable } from '../../gateway/router/table.js';
import { meshTable, request, routed, virtualService } from './support.js';

const to = (host: string) => [{ destination: { host } }];

t.test('virtual host precedence: exact, then longest suffix wildcard, then *', async (t) => {
  const table = meshTable([
    virtualService('exact', { hosts: ['a.x.com'], http: [{ route: to('exact') }] }),
    virtualService('short', { hosts: ['*.x.com'], http: [{ route: to('short') }] }),
    virtualService('long', { hosts: ['*.b.x.com'], http: [{ route: to('long') }] }),
    virtualService('any', { hosts: ['*'], http: [{ route: to('any') }] }),
  ]);
  t.equal(routed(table, request('http://a.x.com/')), 'default/exact.0');
  t.equal(routed(table, request('http://A.X.COM:8080/')), 'default/exact.0', 'case-insensitive, port ignored');
  t.equal(routed(table, request('http://c.x.com/')), 'default/short.0');
  t.equal(routed(table, request('http://c.b.x.com/')), 'default/long.0', 'longest suffix wins');
  t.equal(routed(table, request('http://d.c.x.com/')), 'default/short.0', 'wildcard spans several labels');
  t.equal(routed(table, request('http://x.com/')), 'default/any.0', '*.x.com never matches x.com');
  t.equal(routed(table, request('http://other.org/')), 'default/any.0');
});

t.test('no virtual host and no matching route are told apart', async (t) => {
  const table = meshTable([virtualService('vs', { hosts: ['svc'], http: [{ match: [{ uri: { exact: '/a' } }], route: to('svc') }] })]);
  t.equal(routed(table, request('http://nope/a')), '!no_virtual_host');
  t.equal(routed(table, request('http://svc/b')), '!no_matching_route');
  t.ok(table.hasHost('SVC'));
  t.notOk(table.hasHost('nope'));
  t.equal(routed(createRouteTable([]), request('http://svc/')), '!no_virtual_host');
});

t.test('rules are evaluated in order, first match wins; match blocks keep their position', async (t) => {
  const table = meshTable([
    virtualService('vs', {
      hosts: ['svc'],
      http: [
        { name: 'first', match: [{ name: 'a', uri: { prefix: '/a' } }, { name: 'b', uri: { prefix: '/b' } }], route: to('one') },
        { name: 'second', match: [{ uri: { prefix: '/' } , headers: { x: {} } }], route: to('two') },
        { match: [{ uri: { prefix: '/b' } }], route: to('three') },
      ],
    }),
  ]);
  t.equal(routed(table, request('http://svc/a')), 'default/vs.first.a');
  t.equal(routed(table, request('http://svc/b', { headers: { x: '1' } })), 'default/vs.first.b', 'earlier rule wins');
  t.equal(routed(table, request('http://svc/c', { headers: { x: '1' } })), 'default/vs.second');
  t.equal(routed(table, request('http://svc/c')), '!no_matching_route');
});

t.test('a catch-all (no match, prefix "/" or regex ".*") drops every later rule of the VirtualService', async (t) => {
  for (const catchAll of [undefined, [{ uri: { prefix: '/' } }], [{ uri: { regex: '.*' } }], [{}]]) {
    const table = meshTable([
      virtualService('vs', {
        hosts: ['svc'],
        http: [
          { match: [{ uri: { prefix: '/a' } }], route: to('a') },
          { ...(catchAll !== undefined ? { match: catchAll } : {}), route: to('all') },
          { match: [{ uri: { prefix: '/b' } }], route: to('b') },
        ],
      }),
    ]);
    t.equal(routed(table, request('http://svc/b')), 'default/vs.1', JSON.stringify(catchAll));
  }
  const withHeader = meshTable([
    virtualService('vs', {
      hosts: ['svc'],
      http: [
        { match: [{ uri: { prefix: '/' }, headers: { x: {} } }], route: to('x') },
        { match: [{ uri: { prefix: '/b' } }], route: to('b') },
      ],
    }),
  ]);
  t.equal(routed(withHeader, request('http://svc/b')), 'default/vs.1', 'prefix / with a header condition is not a catch-all');
});

t.test('sidecars use only the earliest VirtualService per host; later duplicates are ignored and reported', async (t) => {
  const diagnostics: Diagnostic[] = [];
  const table = buildMeshRouteTable({
    virtualServices: [
      virtualService('first', { hosts: ['svc'], http: [{ match: [{ uri: { prefix: '/a' } }], route: to('first') }] }),
      virtualService('second', { hosts: ['svc', 'other'], http: [{ route: to('second') }] }),
    ],
    proxyLabels: {},
    proxyNamespace: 'default',
    clusterDomain: 'cluster.local',
    diagnostics,
  });
  t.equal(routed(table, request('http://svc/a')), 'default/first.0');
  t.equal(routed(table, request('http://svc/b')), '!no_matching_route', 'no merging on sidecars');
  t.equal(routed(table, request('http://other/b')), 'default/second.0', 'the later VS still serves its other hosts');
  t.equal(diagnostics.length, 1);
  t.equal(diagnostics[0]?.code, 'MG0702');
});

t.test('sidecars ignore VirtualServices bound only to gateways, and honour exportTo', async (t) => {
  const table = meshTable([
    virtualService('edge-only', { hosts: ['a'], gateways: ['edge'], http: [{ route: to('a') }] }),
    virtualService('both', { hosts: ['b'], gateways: ['edge', 'mesh'], http: [{ route: to('b') }] }),
    virtualService('private', { hosts: ['c'], exportTo: ['.'], http: [{ route: to('c') }] }, 'other'),
    virtualService('shared', { hosts: ['d'], exportTo: ['default'], http: [{ route: to('d') }] }, 'other'),
  ]);
  t.equal(routed(table, request('http://a/')), '!no_virtual_host');
  t.equal(routed(table, request('http://b/')), 'default/both.0');
  t.equal(routed(table, request('http://c/')), '!no_virtual_host', 'exportTo "." hides it from other namespaces');
  t.equal(routed(table, request('http://d/')), 'other/shared.0');
});

t.test('an invalid rule is dropped with a diagnostic; the other rules still route', async (t) => {
  const diagnostics: Diagnostic[] = [];
  const table = buildMeshRouteTable({
    virtualServices: [
      virtualService('vs', {
        hosts: ['svc'],
        http: [
          { match: [{ uri: { regex: '(' } }], route: to('bad') },
          { match: [{ uri: { prefix: '/r' } }], redirect: { uri: '/x', redirectCode: 305 } },
          { route: to('good') },
        ],
      }),
    ],
    proxyLabels: {},
    proxyNamespace: 'default',
    clusterDomain: 'cluster.local',
    diagnostics,
  });
  t.equal(routed(table, request('http://svc/r')), 'default/vs.2');
  t.same(diagnostics.map((d) => [d.code, d.field]), [
    ['MG0701', 'spec.http[0].match[0].uri.regex'],
    ['MG0701', 'spec.http[1].redirect.redirectCode'],
  ]);
});

t.test('a sidecar serves a Kubernetes-style host under the names its clients may use, never over a host named as written', async (t) => {
  const table = meshTable(
    [
      virtualService('reviews', { hosts: ['reviews.shop.svc.cluster.local'], http: [{ route: to('reviews') }] }, 'shop'),
      virtualService('ratings', { hosts: ['ratings.other.svc.cluster.local'], http: [{ route: to('ratings') }] }, 'other'),
      virtualService('literal', { hosts: ['ratings.other'], http: [{ route: to('literal') }] }, 'other'),
    ],
    { namespace: 'shop' },
  );
  for (const host of ['reviews.shop.svc.cluster.local', 'reviews.shop.svc', 'reviews.shop', 'reviews', 'REVIEWS.shop']) {
    t.equal(routed(table, request(`http://${host}/`)), 'shop/reviews.0', host);
  }
  t.equal(routed(table, request('http://ratings.other.svc/')), 'other/ratings.0');
  t.equal(routed(table, request('http://ratings/')), '!no_virtual_host', 'the bare name only from the service\'s own namespace');
  t.equal(routed(table, request('http://ratings.other/')), 'other/literal.0', 'a VirtualService naming the alias itself keeps it');
});
