/**
 * Which proxy this process is: the WorkloadEntry named by `--workload` and the Sidecar that selects it.
 * Each way of getting it wrong has its own catalogue code (MG0901–MG0905), reported as an error.
 */
import t from 'tap';
import { defaultMeshConfig } from '../../gateway/config/kinds/mesh-config.js';
import type { SidecarSpec } from '../../gateway/config/kinds/sidecar.js';
import type { WorkloadEntrySpec } from '../../gateway/config/kinds/workload-entry.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { selectSidecar } from '../../gateway/snapshot/sidecar-plan.js';
import { resolveWorkload } from '../../gateway/snapshot/workload.js';
import { makeResource } from '../helpers/resources.js';

const mesh = defaultMeshConfig();
const workloadEntry = (name: string, namespace: string, labels: Record<string, string>) =>
  makeResource<WorkloadEntrySpec>('WorkloadEntry', name, { address: '127.0.0.1', labels, serviceAccount: name }, { namespace });
const sidecar = (name: string, spec: SidecarSpec, namespace = 'shop') => makeResource<SidecarSpec>('Sidecar', name, spec, { namespace });
const entries = [workloadEntry('cart', 'shop', { app: 'cart' }), workloadEntry('api', 'shop', { app: 'api' }), workloadEntry('api', 'team', { app: 'api' })];
const codes = (diagnostics: readonly Diagnostic[]) => diagnostics.map((d) => [d.code, d.severity]);

t.test('--workload names one WorkloadEntry, by name or <namespace>/<name>', async (t) => {
  const diagnostics: Diagnostic[] = [];
  t.match(resolveWorkload('sidecar', 'cart', entries, mesh, diagnostics), { name: 'cart', namespace: 'shop', principal: 'cluster.local/ns/shop/sa/cart' });
  t.match(resolveWorkload('sidecar', 'team/api', entries, mesh, diagnostics), { name: 'api', namespace: 'team' });
  t.same(diagnostics, []);
});

t.test('a missing, unknown or ambiguous --workload is an error with its own code', async (t) => {
  for (const [name, code] of [[undefined, 'MG0903'], ['nope', 'MG0901'], ['api', 'MG0902']] as const) {
    const diagnostics: Diagnostic[] = [];
    resolveWorkload('sidecar', name, entries, mesh, diagnostics);
    t.same(codes(diagnostics), [[code, 'error']], `--workload ${name ?? '(none)'}`);
  }
  const diagnostics: Diagnostic[] = [];
  resolveWorkload('ingress', undefined, entries, mesh, diagnostics);
  t.same(diagnostics, [], 'the ingress needs no --workload');
});

t.test('the Sidecar that selects the workload gives the inbound app; none, or a bad defaultEndpoint, is an error', async (t) => {
  const workload = resolveWorkload('sidecar', 'cart', entries, mesh, []);
  const good = sidecar('cart', { workloadSelector: { labels: { app: 'cart' } }, ingress: [{ port: { number: 15006 }, defaultEndpoint: '0.0.0.0:8080' }] });
  const diagnostics: Diagnostic[] = [];
  t.match(selectSidecar([good], workload, mesh, diagnostics), { source: 'shop/cart', inbound: { port: 15006, appHost: '127.0.0.1', appPort: 8080 } });
  t.same(diagnostics, []);

  const other = sidecar('other', { workloadSelector: { labels: { app: 'api' } } });
  const missing: Diagnostic[] = [];
  t.equal(selectSidecar([other], workload, mesh, missing), null);
  t.same(codes(missing), [['MG0904', 'error']]);

  const unix = sidecar('cart', { ingress: [{ port: { number: 15006 }, defaultEndpoint: 'unix:///var/run/app.sock' }] });
  const bad: Diagnostic[] = [];
  t.match(selectSidecar([unix], workload, mesh, bad), { inbound: null });
  t.same(bad.map((d) => [d.code, d.severity, d.field]), [['MG0905', 'error', 'spec.ingress[0].defaultEndpoint']]);
});
