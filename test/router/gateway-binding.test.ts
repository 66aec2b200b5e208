import t from 'tap';
import type { GatewaySpec, Server } from '../../gateway/config/kinds/gateway.js';
import type { VirtualServiceSpec } from '../../gateway/config/kinds/virtual-service.js';
import type { Resource } from '../../gateway/config/resource.js';
import { buildGatewayRouteTables } from '../../gateway/router/gateway-binding.js';
import { intersectHosts } from '../../gateway/router/hosts.js';
import type { RouteTable } from '../../gateway/router/types.js';
import { makeResource } from '../helpers/resources.js';
import { request, routed, virtualService } from './support.js';

const to = (host: string) => [{ destination: { host } }];

function httpServer(hosts: string[], port = 80): Server {
  return { port: { number: port, protocol: 'HTTP', name: `http-${port}` }, hosts };
}

function gateway(name: string, servers: Server[], options: { namespace?: string; selector?: Record<string, string> } = {}): Resource<GatewaySpec> {
  return makeResource('Gateway', name, { servers, ...(options.selector !== undefined ? { selector: options.selector } : {}) }, {
    namespace: options.namespace ?? 'edge',
  });
}

function tables(
  gateways: Resource<GatewaySpec>[],
  virtualServices: Resource<VirtualServiceSpec>[],
  proxyLabels: Record<string, string> = { istio: 'ingressgateway' },
): Map<number, RouteTable> {
  return buildGatewayRouteTables({ gateways, virtualServices, proxyLabels, proxyNamespace: 'edge' });
}

function port80(map: Map<number, RouteTable>): RouteTable {
  const table = map.get(80);
  if (table === undefined) throw new Error('no table for port 80');
  return table;
}

t.test('host intersection works both ways; example.com does not match *.example.com', async (t) => {
  t.equal(intersectHosts('*.example.com', 'dev.example.com'), 'dev.example.com');
  t.equal(intersectHosts('dev.example.com', '*.example.com'), 'dev.example.com');
  t.equal(intersectHosts('*.example.com', 'example.com'), null);
  t.equal(intersectHosts('*', 'a.com'), 'a.com');
  t.equal(intersectHosts('a.com', '*'), 'a.com');
  t.equal(intersectHosts('*.example.com', '*.a.example.com'), '*.a.example.com');
  t.equal(intersectHosts('A.com', 'a.COM'), 'a.com');
  t.equal(intersectHosts('a.com', 'b.com'), null);
});

t.test('a VirtualService binds through gateways `ns/name` or a bare name in its own namespace', async (t) => {
  const gw = gateway('public', [httpServer(['*'])]);
  const map = tables(
    [gw],
    [
      virtualService('qualified', { hosts: ['a.com'], gateways: ['edge/public'], http: [{ route: to('a') }] }, 'shop'),
      virtualService('bare', { hosts: ['b.com'], gateways: ['public'], http: [{ route: to('b') }] }, 'edge'),
      virtualService('bare-elsewhere', { hosts: ['c.com'], gateways: ['public'], http: [{ route: to('c') }] }, 'shop'),
      virtualService('mesh-only', { hosts: ['d.com'], http: [{ route: to('d') }] }, 'edge'),
    ],
  );
  const table = port80(map);
  t.equal(routed(table, request('http://a.com/')), 'shop/qualified.0');
  t.equal(routed(table, request('http://b.com/')), 'edge/bare.0');
  t.equal(routed(table, request('http://c.com/')), '!no_virtual_host', 'bare name means shop/public, which does not exist');
  t.equal(routed(table, request('http://d.com/')), '!no_virtual_host', 'gateways omitted ⇒ mesh only');
});

t.test('server host namespace part: ns/, ./ and */ restrict which VirtualServices bind', async (t) => {
  const gw = gateway('public', [httpServer(['shop/a.com', './b.com', '*/c.com'])]);
  const vs = (name: string, host: string, namespace: string) =>
    virtualService(name, { hosts: [host], gateways: ['edge/public'], http: [{ route: to(host) }] }, namespace);
  const table = port80(
    tables([gw], [vs('a-shop', 'a.com', 'shop'), vs('a-other', 'a.com', 'other'), vs('b-shop', 'b.com', 'shop'), vs('b-edge', 'b.com', 'edge'), vs('c-any', 'c.com', 'other')]),
  );
  t.equal(routed(table, request('http://a.com/')), 'shop/a-shop.0');
  t.equal(routed(table, request('http://b.com/')), 'edge/b-edge.0', './ = the Gateway namespace');
  t.equal(routed(table, request('http://c.com/')), 'other/c-any.0');
});

t.test('intersections become the domains: server *.example.com + VS dev.example.com, and VS example.com not bound', async (t) => {
  const gw = gateway('public', [httpServer(['*.example.com'])]);
  const table = port80(
    tables(
      [gw],
      [
        virtualService('dev', { hosts: ['dev.example.com', 'example.com'], gateways: ['edge/public'], http: [{ route: to('dev') }] }),
        virtualService('wide', { hosts: ['*'], gateways: ['edge/public'], http: [{ route: to('wide') }] }),
      ],
    ),
  );
  t.equal(routed(table, request('http://dev.example.com/')), 'default/dev.0');
  t.equal(routed(table, request('http://other.example.com/')), 'default/wide.0', 'VS * ∩ server *.example.com = *.example.com');
  t.equal(routed(table, request('http://example.com/')), '!no_virtual_host');
});

t.test('several VirtualServices on one host are merged: order kept, catch-alls moved to the end', async (t) => {
  const gw = gateway('public', [httpServer(['shop.com'])]);
  const table = port80(
    tables(
      [gw],
      [
        virtualService('first', { hosts: ['shop.com'], gateways: ['edge/public'], http: [{ match: [{ uri: { prefix: '/a' } }], route: to('a') }, { route: to('fallback') }] }),
        virtualService('second', { hosts: ['shop.com'], gateways: ['edge/public'], http: [{ match: [{ uri: { prefix: '/b' } }], route: to('b') }] }),
      ],
    ),
  );
  t.equal(routed(table, request('http://shop.com/a')), 'default/first.0');
  t.equal(routed(table, request('http://shop.com/b')), 'default/second.0', 'the other VS wins over the moved catch-all');
  t.equal(routed(table, request('http://shop.com/z')), 'default/first.1');
});

t.test('gateway selector: only Gateways selecting the proxy labels (empty selector = all) create listeners', async (t) => {
  const vs = virtualService('vs', { hosts: ['*'], gateways: ['edge/mine', 'edge/theirs', 'edge/anyone'], http: [{ route: to('x') }] });
  const map = tables(
    [
      gateway('mine', [httpServer(['a.com'], 80)], { selector: { istio: 'ingressgateway' } }),
      gateway('theirs', [httpServer(['b.com'], 8080)], { selector: { istio: 'other' } }),
      gateway('anyone', [httpServer(['c.com'], 9090)]),
    ],
    [vs],
  );
  t.same([...map.keys()].sort(), [80, 9090]);
});

t.test('servers on one port share a table; hosts without a bound VirtualService get no virtual host', async (t) => {
  const map = tables(
    [gateway('one', [httpServer(['a.com'])]), gateway('two', [httpServer(['b.com']), httpServer(['lonely.com'], 8080)])],
    [
      virtualService('a', { hosts: ['a.com'], gateways: ['edge/one'], http: [{ route: to('a') }] }),
      virtualService('b', { hosts: ['b.com'], gateways: ['edge/two'], http: [{ route: to('b') }] }),
    ],
  );
  const table = port80(map);
  t.equal(routed(table, request('http://a.com/')), 'default/a.0');
  t.equal(routed(table, request('http://b.com/')), 'default/b.0');
  t.equal(routed(map.get(8080) as RouteTable, request('http://lonely.com:8080/')), '!no_virtual_host');
});

t.test('terminated HTTPS servers route http rules; passthrough and TCP servers do not', async (t) => {
  const servers: Server[] = [
    { port: { number: 443, protocol: 'HTTPS', name: 'https' }, hosts: ['a.com'], tls: { mode: 'SIMPLE', credentialName: 'a' } },
    { port: { number: 8443, protocol: 'HTTPS', name: 'pass' }, hosts: ['a.com'], tls: { mode: 'PASSTHROUGH' } },
    { port: { number: 9000, protocol: 'TCP', name: 'tcp' }, hosts: ['a.com'] },
  ];
  const map = tables([gateway('gw', servers)], [virtualService('vs', { hosts: ['a.com'], gateways: ['edge/gw'], http: [{ route: to('a') }] })]);
  t.same([...map.keys()], [443]);
  t.equal(routed(map.get(443) as RouteTable, request('https://a.com/')), 'default/vs.0');
});

t.test('match-level gateways and port select blocks per binding', async (t) => {
  const map = tables(
    [gateway('one', [httpServer(['a.com'], 80), httpServer(['a.com'], 8080)]), gateway('two', [httpServer(['a.com'], 81)])],
    [
      virtualService('vs', {
        hosts: ['a.com'],
        gateways: ['edge/one', 'edge/two'],
        http: [
          { match: [{ gateways: ['edge/two'] }], route: to('two-only') },
          { match: [{ port: 8080 }], route: to('port-8080') },
          { route: to('rest') },
        ],
      }),
    ],
  );
  t.equal(routed(port80(map), request('http://a.com/')), 'default/vs.2');
  t.equal(routed(map.get(8080) as RouteTable, request('http://a.com:8080/')), 'default/vs.1');
  t.equal(routed(map.get(81) as RouteTable, request('http://a.com:81/')), 'default/vs.0');
});
