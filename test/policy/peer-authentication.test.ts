import t from 'tap';
import type { PeerAuthenticationSpec } from '../../gateway/config/kinds/peer-authentication.js';
import { effectiveMtlsMode } from '../../gateway/policy/peer-authentication.js';
import type { WorkloadInfo } from '../../gateway/pipeline/types.js';
import { makeResource } from '../helpers/resources.js';

const workload: WorkloadInfo = {
  name: 'product-v1',
  namespace: 'my-app',
  labels: { app: 'product-service', version: 'v1' },
  serviceAccount: 'product-service',
  principal: 'cluster.local/ns/my-app/sa/product-service',
};

const pa = (name: string, namespace: string, spec: PeerAuthenticationSpec) =>
  makeResource<PeerAuthenticationSpec>('PeerAuthentication', name, spec, { namespace, apiVersion: 'security.istio.io/v1' });

t.test('nothing configured → PERMISSIVE', async (t) => {
  t.equal(effectiveMtlsMode([], workload, 15006, 'istio-system').mode, 'PERMISSIVE');
});

t.test('mesh → namespace → workload → port: the narrowest scope wins, UNSET inherits', async (t) => {
  const mesh = pa('mesh', 'istio-system', { mtls: { mode: 'STRICT' } });
  const namespace = pa('ns', 'my-app', { mtls: { mode: 'PERMISSIVE' } });
  const selected = pa('wl', 'my-app', { selector: { matchLabels: { app: 'product-service' } }, mtls: { mode: 'UNSET' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } });
  t.equal(effectiveMtlsMode([mesh], workload, 15006, 'istio-system').mode, 'STRICT', 'mesh-wide');
  t.equal(effectiveMtlsMode([mesh, namespace], workload, 15006, 'istio-system').mode, 'PERMISSIVE', 'namespace beats mesh');
  const all = effectiveMtlsMode([mesh, namespace, selected], workload, 15006, 'istio-system');
  t.equal(all.mode, 'PERMISSIVE', 'workload UNSET inherits the namespace mode');
  t.same(all.policies, ['istio-system/mesh', 'my-app/ns', 'my-app/wl']);
  t.equal(effectiveMtlsMode([mesh, namespace, selected], workload, 8080, 'istio-system').mode, 'DISABLE', 'port-level wins on its port');
});

t.test('port-level UNSET inherits the workload result', async (t) => {
  const selected = pa('wl', 'my-app', { selector: { matchLabels: { app: 'product-service' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'UNSET' } } });
  t.equal(effectiveMtlsMode([selected], workload, 8080, 'istio-system').mode, 'STRICT');
});

t.test('a selector policy that does not select the workload, or lives in another namespace, is ignored', async (t) => {
  const other = pa('other', 'my-app', { selector: { matchLabels: { app: 'order-service' } }, mtls: { mode: 'DISABLE' } });
  const elsewhere = pa('elsewhere', 'shop', { mtls: { mode: 'DISABLE' } });
  t.equal(effectiveMtlsMode([other, elsewhere], workload, 15006, 'istio-system').mode, 'PERMISSIVE');
});

t.test('selector policies in the root namespace are ignored, as in Istio', async (t) => {
  const rootSelector = pa('root-sel', 'istio-system', { selector: { matchLabels: { app: 'product-service' } }, mtls: { mode: 'DISABLE' } });
  t.equal(effectiveMtlsMode([rootSelector], workload, 15006, 'istio-system').mode, 'PERMISSIVE');
});

t.test('within a scope the oldest (first in file order) wins', async (t) => {
  const first = pa('a', 'my-app', { mtls: { mode: 'STRICT' } });
  const second = pa('b', 'my-app', { mtls: { mode: 'DISABLE' } });
  t.equal(effectiveMtlsMode([second, first], workload, 15006, 'istio-system').mode, 'STRICT', 'document order, not array order');
});
