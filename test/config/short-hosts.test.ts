/**
 * Istio's ResolveShortnameToFQDN on the loaded resources: which fields are expanded, which names are
 * left alone, and the names a client may use for a Kubernetes-style service.
 */
import t from 'tap';
import type { DestinationRuleSpec } from '../../gateway/config/kinds/destination-rule.js';
import type { ServiceEntrySpec } from '../../gateway/config/kinds/service-entry.js';
import type { VirtualServiceSpec } from '../../gateway/config/kinds/virtual-service.js';
import type { Resource } from '../../gateway/config/resource.js';
import { expandShortHost, expandShortHosts, hostAliases, serviceHostResolver } from '../../gateway/config/short-hosts.js';
import { makeResource } from '../helpers/resources.js';

t.test('a name without a dot is expanded with the namespace and cluster domain; FQDNs, wildcards, * and IPs are kept', async (t) => {
  t.equal(expandShortHost('product-service', 'my-app', 'cluster.local'), 'product-service.my-app.svc.cluster.local');
  t.equal(expandShortHost('reviews', 'foo', 'corp.example'), 'reviews.foo.svc.corp.example', 'the mesh clusterDomain is used');
  for (const host of ['reviews.foo', 'api.example.com', '*.example.com', '*', '10.0.0.1', '::1', 'fd00::2']) {
    t.equal(expandShortHost(host, 'foo', 'cluster.local'), host, host);
  }
});

t.test('VirtualService hosts and every destination, and DestinationRule host, are expanded; other kinds are untouched', async (t) => {
  const virtualService = makeResource<VirtualServiceSpec>(
    'VirtualService',
    'vs',
    {
      hosts: ['reviews', 'reviews.example.com', '*'],
      http: [
        {
          route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 90 }, { destination: { host: 'ratings.other' }, weight: 10 }],
          mirror: { host: 'shadow' },
          mirrors: [{ destination: { host: 'audit' } }],
        },
      ],
      tcp: [{ route: [{ destination: { host: 'db' } }] }],
      tls: [{ match: [{ sniHosts: ['reviews'] }], route: [{ destination: { host: 'tls-backend' } }] }],
    },
    { namespace: 'foo' },
  );
  const destinationRule = makeResource<DestinationRuleSpec>('DestinationRule', 'dr', { host: 'reviews' }, { namespace: 'foo' });
  const serviceEntry = makeResource<ServiceEntrySpec>('ServiceEntry', 'se', { hosts: ['legacy'] }, { namespace: 'foo' });
  const [vs, dr, se] = expandShortHosts([virtualService, destinationRule, serviceEntry], 'cluster.local') as [
    Resource<VirtualServiceSpec>,
    Resource<DestinationRuleSpec>,
    Resource<ServiceEntrySpec>,
  ];
  t.same(vs.spec.hosts, ['reviews.foo.svc.cluster.local', 'reviews.example.com', '*']);
  t.same(
    vs.spec.http?.[0]?.route?.map((r) => [r.destination.host, r.destination.subset, r.weight]),
    [['reviews.foo.svc.cluster.local', 'v1', 90], ['ratings.other', undefined, 10]],
  );
  t.equal(vs.spec.http?.[0]?.mirror?.host, 'shadow.foo.svc.cluster.local');
  t.equal(vs.spec.http?.[0]?.mirrors?.[0]?.destination.host, 'audit.foo.svc.cluster.local');
  t.equal(vs.spec.tcp?.[0]?.route?.[0]?.destination.host, 'db.foo.svc.cluster.local');
  t.equal(vs.spec.tls?.[0]?.route?.[0]?.destination.host, 'tls-backend.foo.svc.cluster.local');
  t.same(vs.spec.tls?.[0]?.match[0]?.sniHosts, ['reviews'], 'SNI values are matched as sent, not expanded');
  t.equal(dr.spec.host, 'reviews.foo.svc.cluster.local');
  t.equal(se, serviceEntry, 'a ServiceEntry host is taken as written (Istio does not expand it)');
  t.ok(Object.isFrozen(vs.spec.http?.[0]), 'the rewritten spec is as immutable as the loaded one');
  t.equal(vs.at(['spec', 'hosts']), virtualService.at(['spec', 'hosts']), 'positions still point at the YAML');
  t.same(virtualService.spec.hosts, ['reviews', 'reviews.example.com', '*'], 'the loaded resource is not modified');
});

t.test('a loaded spec seen before is not expanded again, unless its namespace or the cluster domain changed', async (t) => {
  const spec: VirtualServiceSpec = { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] };
  const loaded = makeResource<VirtualServiceSpec>('VirtualService', 'vs', spec, { namespace: 'foo' });
  const expandedSpec = (resource: Resource<VirtualServiceSpec>, clusterDomain: string): VirtualServiceSpec =>
    (expandShortHosts([resource], clusterDomain)[0] as Resource<VirtualServiceSpec>).spec;
  const first = expandedSpec(loaded, 'cluster.local');
  t.equal(expandedSpec({ ...loaded }, 'cluster.local'), first, 'the same loaded spec (an unchanged document on a reload): the same expanded spec');
  const otherDomain = expandedSpec(loaded, 'corp.example');
  t.same(otherDomain.hosts, ['reviews.foo.svc.corp.example'], 'another cluster domain is expanded anew');
  const elsewhere = makeResource<VirtualServiceSpec>('VirtualService', 'vs', spec, { namespace: 'bar' });
  t.same(expandedSpec({ ...elsewhere, spec: loaded.spec }, 'cluster.local').hosts, ['reviews.bar.svc.cluster.local'], 'the same spec in another namespace is expanded anew');
});

t.test('a Kubernetes-style host answers to name.ns.svc and name.ns, and to name only from its own namespace', async (t) => {
  t.same(hostAliases('reviews.foo.svc.cluster.local', 'foo', 'cluster.local'), ['reviews.foo.svc', 'reviews.foo', 'reviews']);
  t.same(hostAliases('reviews.foo.svc.cluster.local', 'bar', 'cluster.local'), ['reviews.foo.svc', 'reviews.foo']);
  t.same(hostAliases('api.example.com', 'foo', 'cluster.local'), []);
  t.same(hostAliases('a.b.foo.svc.cluster.local', 'foo', 'cluster.local'), [], 'not a Kubernetes Service name');
  t.same(hostAliases('reviews.foo.svc.corp.example', 'foo', 'cluster.local'), [], 'another cluster domain');

  const resolve = serviceHostResolver(['reviews.foo.svc.cluster.local', 'reviews.foo'], 'foo', 'cluster.local');
  t.equal(resolve('reviews'), 'reviews.foo.svc.cluster.local');
  t.equal(resolve('REVIEWS.foo.svc'), 'reviews.foo.svc.cluster.local');
  t.equal(resolve('reviews.foo'), 'reviews.foo', 'a registry host named as written keeps its own service');
  t.equal(resolve('unknown'), 'unknown');
});
