import t from 'tap';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { PeerIdentity, ProxyMode } from '../../gateway/pipeline/types.js';
import { ISTIO_LABEL_NAMES, compileIstioLabels, istioLabelKey, istioLabelValues } from '../../plugins/metrics/istio-labels.js';
import { IstioSeriesCache } from '../../plugins/metrics/istio-metrics.js';
import { makeResource } from '../helpers/resources.js';

function peer(namespace: string, serviceAccount: string): PeerIdentity {
  const principal = `cluster.local/ns/${namespace}/sa/${serviceAccount}`;
  return { principal, trustDomain: 'cluster.local', namespace, serviceAccount, uri: `spiffe://${principal}`, certHash: 'ab' };
}

interface Variant {
  cluster: string;
  peer: PeerIdentity | null;
  sourceIp: string;
  upstreamHost: string;
  host: string;
  contentType: string | undefined;
  grpcStatus: string | undefined;
  status: number;
  flags: string[];
}

/** A request and reply as the onResponse hook sees them: only what the label functions read. */
function exchange(variant: Variant): { request: FastifyRequest; reply: FastifyReply } {
  const mesh = {
    attrs: { peer: variant.peer, sourceIp: variant.sourceIp, host: variant.host },
    upstreamCluster: variant.cluster,
    upstreamHost: variant.upstreamHost,
    responseFlags: variant.flags,
    responseHeader: (reply: FastifyReply, name: string) => reply.getHeader(name),
  };
  const headers = variant.contentType === undefined ? {} : { 'content-type': variant.contentType };
  const request = { mesh, headers } as unknown as FastifyRequest;
  const reply = { statusCode: variant.status, getHeader: (name: string) => (name === 'grpc-status' ? variant.grpcStatus : undefined) } as unknown as FastifyReply;
  return { request, reply };
}

function* variants(): Generator<Variant> {
  for (const cluster of ['', 'outbound|80|v1|details.default.svc.cluster.local', 'outbound|80||', 'inbound|8080||', 'PassthroughCluster'])
    for (const requestPeer of [null, peer('shop', 'orders'), peer('shop', 'billing')])
      for (const sourceIp of ['10.0.0.5', '10.0.0.9'])
        for (const upstreamHost of ['10.0.0.5:9080', '10.0.0.7:9080', ''])
          for (const host of ['details.example.com', 'other.example.com'])
            for (const [contentType, grpcStatus] of [[undefined, undefined], ['application/grpc', '0'], ['application/grpc', '14'], ['text/plain', '14']] as const)
              for (const status of [200, 503])
                for (const flags of [[], ['UF'], ['UF', 'URX']])
                  yield { cluster, peer: requestPeer, sourceIp, upstreamHost, host, contentType, grpcStatus, status, flags };
}

for (const mode of ['ingress', 'sidecar'] as ProxyMode[]) {
  t.test(`${mode}: requests with one label key always have the same Istio label values`, async (t) => {
    const compiled = compileIstioLabels({
      resources: [makeResource('WorkloadEntry', 'details-v1', { address: '10.0.0.5', ports: { http: 9080 }, labels: { app: 'details', version: 'v1' }, serviceAccount: 'orders' }, { namespace: 'shop' })],
      mode,
      workload: { name: 'details-v1', namespace: 'shop', serviceAccount: 'details', labels: { app: 'details' }, principal: 'cluster.local/ns/shop/sa/details' } as never,
      rootNamespace: 'istio-system',
      trustDomain: 'cluster.local',
      diagnostics: [],
    });
    const valuesByKey = new Map<string, string>();
    const distinctValues = new Set<string>();
    let conflicts = 0;
    for (const variant of variants()) {
      const { request, reply } = exchange(variant);
      const key = istioLabelKey(compiled, request, reply);
      const values = JSON.stringify(istioLabelValues(compiled, request, reply));
      distinctValues.add(values);
      const seen = valuesByKey.get(key);
      if (seen === undefined) valuesByKey.set(key, values);
      else if (seen !== values) conflicts++;
    }
    t.equal(conflicts, 0, 'no key stands for two different label sets');
    t.ok(distinctValues.size > 100, `the variants cover ${distinctValues.size} distinct label sets`);
  });
}

t.test('the series cache gives every request the series of its own label values, on the first and on repeated requests of a kind', async (t) => {
  const compiled = compileIstioLabels({
    resources: [makeResource('WorkloadEntry', 'details-v1', { address: '10.0.0.5', ports: { http: 9080 }, labels: { app: 'details', version: 'v1' }, serviceAccount: 'orders' }, { namespace: 'shop' })],
    mode: 'sidecar',
    workload: { name: 'details-v1', namespace: 'shop', serviceAccount: 'details', labels: { app: 'details' }, principal: 'cluster.local/ns/shop/sa/details' } as never,
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
    diagnostics: [],
  });
  const cache = new IstioSeriesCache(100_000);
  const all = [...variants()];
  let mismatches = 0;
  // Each variant is asked for three times, its neighbours in between, so both the recent-kind check and the key memo answer.
  for (let round = 0; round < 3; round++) {
    for (const variant of all) {
      const { request, reply } = exchange(variant);
      const expected = istioLabelValues(compiled, request, reply);
      const labels = cache.seriesFor(compiled, request, reply).requests.labels;
      if (ISTIO_LABEL_NAMES.some((name, index) => labels[name] !== expected[index])) mismatches++;
    }
  }
  t.equal(mismatches, 0, `${all.length * 3} lookups, none answered with another kind's series`);
});
