/**
 * `--workload` names a sidecar, so it implies the sidecar view for `validate`, `run` and `explain`;
 * an unknown workload fails naming the WorkloadEntries that exist, without a cascade of follow-up errors.
 */
import t from 'tap';
import { runCli } from './fixtures.js';

// Every assertion waits on CLI children, each a Node start plus a config compile: on a loaded machine
// (load 20 on 2 cores) they take seconds each, more than the default per-file budget.
t.setTimeout(300_000);

t.test('--workload implies the sidecar view; an unknown workload fails naming the WorkloadEntries that exist', async (t) => {
  const existing = /no WorkloadEntry named "does-not-exist" describes this sidecar \(WorkloadEntries: my-app\/product-v1, my-app\/product-v2, my-app\/order-service\)/;
  const validate = await runCli(['validate', '-c', 'config/demo', '--workload', 'does-not-exist']);
  t.equal(validate.code, 1);
  t.match(validate.stdout, existing);
  t.notMatch(validate.stdout, /MG0904/, 'no cascaded "no Sidecar selects" error');
  const run = await runCli(['run', '-c', 'config/demo', '--workload', 'does-not-exist']);
  t.equal(run.code, 1, 'run refuses to start');
  t.match(run.stderr, existing);
  const valid = await runCli(['validate', '-c', 'config/demo', '--workload', 'my-app/product-v1']);
  t.equal(valid.code, 0, valid.stdout);
  const explain = await runCli(['explain', '-c', 'config/demo', '--workload', 'my-app/product-v1', '--principal', 'cluster.local/ns/istio-system/sa/istio-ingressgateway', '--path', '/api/products/1']);
  t.equal(explain.code, 0, explain.stderr);
  t.match(explain.stdout, /^DENY\n/, 'the sidecar of product-v1 denies the ingress on /api/products/*');
});
