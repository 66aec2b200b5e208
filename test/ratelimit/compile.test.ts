/** RateLimitPolicy schema, load-time diagnostics and counters across hot reloads. */
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import type { FastifyInstance } from 'fastify';
import type { Diagnostic, Resource } from '../../gateway/config/resource.js';
import { rateLimitPlugin } from '../../plugins/ratelimit/index.js';
import { RateLimitPolicySpec } from '../../plugins/ratelimit/schema.js';
import type { RateLimitPolicySpec as Spec } from '../../plugins/ratelimit/schema.js';
import { buildPluginHarness } from '../helpers/plugin-harness.js';
import { rateLimitPolicy } from './fixtures/policies.js';

function diagnosticsOf(resources: readonly Resource[]): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  rateLimitPlugin.compile({
    resources,
    mode: 'ingress',
    workload: { name: 'gw', namespace: 'default', labels: {}, serviceAccount: 'gw', principal: 'cluster.local/ns/default/sa/gw' },
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
    diagnostics,
  }, undefined);
  return diagnostics;
}

t.test('the kind schema accepts a full policy and rejects misspelt or out-of-range fields', async (t) => {
  const full: Spec = {
    selector: { matchLabels: { app: 'api' } },
    rules: [
      {
        match: { hosts: ['api.example.com'], paths: ['/v1/*'], notMethods: ['OPTIONS'], headers: { 'x-tier': ['free'] } },
        key: [{ remoteIp: {} }, { header: { name: 'x-api-key' } }, { claim: { name: 'org.id' } }, { principal: {} }, { requestPrincipal: {} }, { route: {} }],
        missingKey: 'skip',
        limits: [{ requests: 100, per: '1s', cost: 2, insuranceLimit: 20 }],
      },
    ],
    backend: 'redis',
    failureMode: 'open',
    response: { headers: true, status: 429 },
  };
  t.ok(Value.Check(RateLimitPolicySpec, full));
  t.notOk(Value.Check(RateLimitPolicySpec, { rules: [] }), 'at least one rule');
  t.notOk(Value.Check(RateLimitPolicySpec, { rules: [{ limits: [] }] }), 'at least one limit');
  t.notOk(Value.Check(RateLimitPolicySpec, { rules: [{ limits: [{ requests: 0, per: '1s' }] }] }), 'requests ≥ 1');
  t.notOk(Value.Check(RateLimitPolicySpec, { rules: [{ limits: [{ requests: 1, per: '1s', cots: 2 }] }] }), 'misspelt field');
  t.notOk(Value.Check(RateLimitPolicySpec, { rules: [{ key: [{ ip: {} }], limits: [{ requests: 1, per: '1s' }] }] }), 'unknown key part');
  t.notOk(Value.Check(RateLimitPolicySpec, { rules: [{ limits: [{ requests: 1, per: '1s' }] }], response: { status: 200 } }), 'status 400-599');
  const defaulted = Value.Default(RateLimitPolicySpec, structuredClone({ rules: [{ limits: [{ requests: 1, per: '1s' }] }] })) as Spec;
  t.equal(defaulted.backend, 'local');
  t.equal(defaulted.failureMode, 'open');
});

t.test('cross-field rules report exact messages at the offending field', async (t) => {
  const diagnostics = diagnosticsOf([
    rateLimitPolicy('bad', {
      rules: [
        {
          match: { paths: ['/a', ''] },
          limits: [
            { requests: 5, per: '1500ms' },
            { requests: 3, per: '1m', cost: 4 },
            { requests: 10, per: '1h', insuranceLimit: 2 },
          ],
        },
      ],
    }),
    rateLimitPolicy('no-redis', { backend: 'redis', rules: [{ limits: [{ requests: 1, per: '1s' }, { requests: 2, per: '1s' }] }] }),
  ]);
  t.same(
    diagnostics.map((d) => [d.code, d.severity, d.name, d.field, d.message]),
    [
      ['MG1106', 'error', 'bad', 'spec.rules[0].match.paths[1]', 'empty value pattern "" never matches a request; remove it, or write "*" for any non-empty value'],
      ['MG1102', 'error', 'bad', 'spec.rules[0].limits[1].cost', 'cost 4 is larger than requests 3: no request could ever be admitted'],
      ['MG1101', 'error', 'bad', 'spec.rules[0].limits[0].per', 'limit window "per: 1500ms" must be a whole number of seconds, at least 1s (counters expire in whole seconds)'],
      ['MG1103', 'error', 'bad', 'spec.rules[0].limits[2].insuranceLimit', 'insuranceLimit only applies with backend: redis and failureMode: open (this policy has backend: local, failureMode: open)'],
      ['MG1104', 'error', 'no-redis', 'spec.backend', 'backend: redis needs MeshConfig spec.redis.url, and no MeshConfig in this config sets it; use backend: local or configure Redis'],
      ['MG1105', 'warning', 'no-redis', 'spec.rules[0].limits[1].per', 'two limits with the same window "1s" on one rule: only the smallest limit (requests: 1) can ever apply, the others are ignored'],
    ],
  );
  t.same(diagnosticsOf([rateLimitPolicy('bad-duration', { rules: [{ limits: [{ requests: 1, per: '10' }] }] })])[0]?.message,
    'limit window "per: 10" is not a duration: missing unit after "10" (use ns, us, ms, s, m or h)');
});

async function admittedCount(app: FastifyInstance, url: string, count: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < count; i++) if ((await app.inject({ url })).statusCode === 200) ok++;
  return ok;
}

t.test('a reload keeps the counters of unchanged policies and resets changed ones', async (t) => {
  const policies = (changedRequests: number): Resource[] => [
    rateLimitPolicy('stable', { rules: [{ match: { paths: ['/stable'] }, limits: [{ requests: 4, per: '1m' }] }] }),
    rateLimitPolicy('changing', { rules: [{ match: { paths: ['/changing'] }, limits: [{ requests: changedRequests, per: '1m' }] }] }),
  ];
  const before = await buildPluginHarness({ plugins: [rateLimitPlugin], resources: policies(4) });
  t.teardown(() => before.app.close());
  t.equal(await admittedCount(before.app, '/stable', 3), 3);
  t.equal(await admittedCount(before.app, '/changing', 4), 4);

  // The next snapshot is compiled while the gateway (the first app) is still running, as a reload does.
  const after = await buildPluginHarness({ plugins: [rateLimitPlugin], resources: policies(5) });
  t.teardown(() => after.app.close());
  t.equal(await admittedCount(after.app, '/stable', 3), 1, 'unchanged policy: 3 of 4 were already used');
  t.equal(await admittedCount(after.app, '/changing', 6), 5, 'changed limit: a fresh counter of 5');

  const again = await buildPluginHarness({ plugins: [rateLimitPlugin], resources: policies(5).slice(1) });
  t.teardown(() => again.app.close());
  const restored = await buildPluginHarness({ plugins: [rateLimitPlugin], resources: policies(5) });
  t.teardown(() => restored.app.close());
  t.equal(await admittedCount(restored.app, '/stable', 5), 4, 'a policy dropped by one reload and re-added by the next starts afresh');
  t.equal(await admittedCount(restored.app, '/changing', 1), 0, 'the policy present in every snapshot kept its exhausted counter');
});
