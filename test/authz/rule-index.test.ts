/**
 * The RBAC decision goes through the path-head index and the required-header check (rule-index.ts):
 * it must equal a plain walk over every policy and rule in config order, for every request.
 */
import t from 'tap';
import type { AuthorizationPolicySpec } from '../../gateway/config/kinds/authorization-policy.js';
import type { Diagnostic, Resource } from '../../gateway/config/resource.js';
import { compileAuthz } from '../../plugins/authz/compile.js';
import type { CompiledAuthz } from '../../plugins/authz/compile.js';
import { firstMatchingRule } from '../../plugins/authz/compiled-policy.js';
import { evaluateRbac } from '../../plugins/authz/evaluate.js';
import { explainRequest } from '../../plugins/authz/explain.js';
import { authzRequestFromDescription } from '../../plugins/authz/request-view.js';
import type { DescribedRequest } from '../../gateway/pipeline/capabilities.js';
import type { AuthzRequest } from '../../plugins/authz/request-view.js';
import { AUTHORITY_MEMO_LIMIT } from '../../plugins/authz/rule-index.js';
import type { IndexedPolicies } from '../../plugins/authz/rule-index.js';
import { makeResource } from '../helpers/resources.js';

function policy(name: string, spec: AuthorizationPolicySpec): Resource {
  return makeResource('AuthorizationPolicy', name, spec, { apiVersion: 'security.istio.io/v1', namespace: 'my-app' });
}

function compile(resources: readonly Resource[]): CompiledAuthz {
  const diagnostics: Diagnostic[] = [];
  const compiled = compileAuthz({
    resources,
    mode: 'sidecar',
    workload: { name: 'w', namespace: 'my-app', labels: { app: 'svc' }, serviceAccount: 'svc', principal: 'cluster.local/ns/my-app/sa/svc' },
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
    diagnostics,
  });
  if (diagnostics.length > 0) throw new Error(diagnostics.map((d) => d.message).join('; '));
  return compiled;
}

/** docs/policies.md#evaluation-order walked literally, without the index. */
function linearDecision(compiled: CompiledAuthz, request: AuthzRequest): string {
  const first = (indexed: IndexedPolicies): string | null => {
    for (const candidate of indexed.policies) {
      const rule = firstMatchingRule(candidate, request);
      if (rule !== -1) return `${candidate.id} rule[${rule}]`;
    }
    return null;
  };
  const denied = first(compiled.deny);
  if (denied !== null) return `DENY ${denied}`;
  if (compiled.allow.policies.length === 0) return 'ALLOW none';
  const allowed = first(compiled.allow);
  return allowed === null ? 'DENY none' : `ALLOW ${allowed}`;
}

function indexedDecision(compiled: CompiledAuthz, request: AuthzRequest): string {
  const decision = evaluateRbac(compiled.deny, compiled.allow, request);
  return `${decision.allowed ? 'ALLOW' : 'DENY'} ${decision.policy === null ? 'none' : `${decision.policy} rule[${decision.ruleIndex}]`}`;
}

const to = (operation: Record<string, string[]>) => ({ to: [{ operation }] });

const RESOURCES = [
  policy('deny-admin', { action: 'DENY', rules: [to({ paths: ['/admin', '/admin/*'] }), { when: [{ key: 'request.headers[x-block]', values: ['yes', 'y*'] }] }] }),
  policy('deny-not-get-internal', { action: 'DENY', rules: [to({ paths: ['/internal/{*}/data'], notMethods: ['GET'] })] }),
  policy('deny-unless-header', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/guarded*'] } }], when: [{ key: 'request.headers[x-pass]', notValues: ['ok'] }] }] }),
  policy('allow-chain', {
    rules: [
      to({ paths: ['/a/*', '/a/b*'] }),
      to({ paths: ['/a/b/c'], hosts: ['API.example.com', 'api.example.com:*'] }),
      to({ paths: ['/a/b/c/{**}'], notHosts: ['blocked.example.com'] }),
    ],
  }),
  policy('allow-hosts-only', { rules: [to({ hosts: ['*.example.org', 'exact.example.net'] })] }),
  // Host-indexed pathless rules (exact with port and mixed case, suffix) and one the index cannot narrow (prefix).
  policy('allow-host-exact-port', { rules: [to({ hosts: ['Exact.Example.NET:443'], methods: ['POST'] })] }),
  policy('allow-host-prefix', { rules: [to({ hosts: ['pre*'], methods: ['PUT', 'DELETE'] }), to({ hosts: ['*.Test'], methods: ['HEAD'] })] }),
  policy('allow-mixed-branches', { rules: [{ to: [{ operation: { paths: ['/m/x'] } }, { operation: { methods: ['DELETE'] } }] }] }),
  policy('allow-suffix', { rules: [to({ paths: ['*/info', '/inf*'] }), to({ paths: ['/public/*'], methods: ['GET', 'HEAD'] })] }),
  policy('allow-tenant', { rules: [{ ...to({ paths: ['/api/*'] }), when: [{ key: 'request.headers[X-Tenant]', values: ['t1', 't2-*'] }] }] }),
  // A run of rules gated on the same header (one lookup rejects the run when it is absent), one of them pathless.
  policy('allow-tenant-3', { rules: [{ when: [{ key: 'request.headers[x-tenant]', values: ['t3'] }, { key: 'request.headers[x-block]', values: ['no'] }] }] }),
  policy('allow-tenant-4', { rules: [{ ...to({ paths: ['/api/*', '/a/*'] }), when: [{ key: 'request.headers[x-tenant]', values: ['t4'] }] }] }),
  policy('allow-api-products', { rules: [{ ...to({ paths: ['/api/products/*'], methods: ['GET'] }), from: [{ source: { requestPrincipals: ['https://issuer.example/*'] } }] }] }),
  policy('allow-root-exact', { rules: [to({ paths: ['/'] })] }),
  policy('allow-all-late', { rules: [{ when: [{ key: 'request.headers[x-anything]', values: ['*'] }] }] }),
];

const PATHS = ['/', '/a', '/a/', '/a/x', '/ab', '/a/b', '/a/b/c', '/a/b/c/d/e', '/admin', '/admin/x', '/adminx', '/internal/7/data', '/internal/7/8/data', '/guarded/1', '/m/x', '/m/y', '/x/info', '/info', '/inf', '/i', '/public/p', '/api/orders', '/api/products/42', '/api/products', '/zzz', ''];
const HOSTS = [
  'api.example.com', 'api.example.com:8080', 'blocked.example.com', 'a.example.org', 'example.org', 'exact.example.net', 'exact.example.net:443',
  'x.exact.example.net:443', 'other.test', 'prefix.example.com', 'Other.TEST',
];
const METHODS = ['GET', 'POST', 'DELETE', 'HEAD'];
const HEADER_SETS: readonly Record<string, string>[] = [
  {},
  { 'x-block': 'yes' },
  { 'x-block': 'no' },
  { 'x-pass': 'ok' },
  { 'x-pass': '' },
  { 'x-tenant': 't2-a' },
  { 'x-tenant': 't3' },
  { 'x-tenant': 't3', 'x-block': 'no' },
  { 'x-tenant': 't4' },
  { 'x-anything': 'v' },
];
const CLAIMS = [undefined, { iss: 'https://issuer.example', sub: 'alice' }];

t.test('indexed decisions equal a linear walk over every policy and rule', async (t) => {
  const compiled = compile(RESOURCES);
  let compared = 0;
  const mismatches: string[] = [];
  for (const path of PATHS) {
    for (const host of HOSTS) {
      for (const method of METHODS) {
        for (const headers of HEADER_SETS) {
          for (const jwtClaims of CLAIMS) {
            const described: DescribedRequest = { path, host, method, headers, ...(jwtClaims === undefined ? {} : { jwtClaims }) };
            const request = authzRequestFromDescription(described);
            const expected = linearDecision(compiled, request);
            const actual = indexedDecision(compiled, request);
            compared++;
            if (actual !== expected) mismatches.push(`${JSON.stringify(described)}: ${actual}, expected ${expected}`);
          }
        }
      }
    }
  }
  t.same(mismatches.slice(0, 10), [], `${compared} requests compared`);
});

t.test('the per-authority memo of host-indexed rules is bounded and decides the same after it starts over', async (t) => {
  const compiled = compile(RESOURCES);
  const mismatches: string[] = [];
  for (let i = 0; i < AUTHORITY_MEMO_LIMIT + 50; i++) {
    for (const host of [`h${i}.example.org`, `pre${i}.test`, 'exact.example.net:443']) {
      for (const method of ['POST', 'PUT', 'HEAD', 'GET']) {
        const request = authzRequestFromDescription({ path: '/zzz', host, method });
        const expected = linearDecision(compiled, request);
        const actual = indexedDecision(compiled, request);
        if (actual !== expected) mismatches.push(`${method} ${host}: ${actual}, expected ${expected}`);
      }
    }
  }
  t.same(mismatches.slice(0, 10), []);
  t.ok(compiled.allow.index.pathlessByAuthority.size <= AUTHORITY_MEMO_LIMIT, 'memo stays within its bound');
  t.equal(
    indexedDecision(compiled, authzRequestFromDescription({ path: '/zzz', host: 'exact.example.net:443', method: 'POST' })),
    'ALLOW my-app/allow-host-exact-port rule[0]',
  );
});

t.test('every index bucket still reaches its rules, in config order', async (t) => {
  const compiled = compile(RESOURCES);
  const decide = (request: DescribedRequest): string => {
    const result = explainRequest(compiled, request);
    return `${result.decision} ${result.policy ?? 'none'} rule[${result.ruleIndex}]`;
  };
  // Headed rules along one chain: the shortest head still admits the deepest path.
  t.equal(decide({ path: '/a/b/c/d/e', host: 'x.test' }), 'ALLOW my-app/allow-chain rule[0]');
  t.equal(decide({ path: '/a/x', host: 'x.test' }), 'ALLOW my-app/allow-chain rule[0]');
  t.equal(decide({ path: '/ab', host: 'x.test' }), 'DENY none rule[-1]');
  // Templated head `/internal/` and a negated method.
  t.equal(decide({ path: '/internal/7/data', method: 'POST', host: 'x.test', headers: { 'x-anything': '1' } }), 'DENY my-app/deny-not-get-internal rule[0]');
  t.equal(decide({ path: '/internal/7/data', method: 'GET', host: 'x.test', headers: { 'x-anything': '1' } }), 'ALLOW my-app/allow-all-late rule[0]');
  // A `when` with only notValues needs no header: its absence matches.
  t.equal(decide({ path: '/guarded/1', host: 'x.test' }), 'DENY my-app/deny-unless-header rule[0]');
  t.equal(decide({ path: '/guarded/1', host: 'x.test', headers: { 'x-pass': 'ok' } }), 'DENY none rule[-1]');
  // Pathless rules: hosts only (wildcard suffix, mixed case, port), a branch without paths, suffix paths.
  t.equal(decide({ path: '/zzz', host: 'A.Example.ORG' }), 'ALLOW my-app/allow-hosts-only rule[0]');
  t.equal(decide({ path: '/zzz', host: 'exact.example.net:443' }), 'DENY none rule[-1]');
  t.equal(decide({ path: '/zzz', method: 'DELETE', host: 'x.test' }), 'ALLOW my-app/allow-mixed-branches rule[0]');
  t.equal(decide({ path: '/deep/info', host: 'x.test' }), 'ALLOW my-app/allow-suffix rule[0]');
  // Required header present / absent, header name folded; then the JWT principal after it.
  t.equal(decide({ path: '/api/products/42', host: 'x.test', headers: { 'X-Tenant': 't1' } }), 'ALLOW my-app/allow-tenant rule[0]');
  t.equal(decide({ path: '/api/products/42', host: 'x.test', jwtClaims: { iss: 'https://issuer.example', sub: 'a' } }), 'ALLOW my-app/allow-api-products rule[0]');
  t.equal(decide({ path: '/api/products/42', host: 'x.test' }), 'DENY none rule[-1]');
  // Host with port and mixed case against hosts [API.example.com, api.example.com:*] and notHosts.
  t.equal(decide({ path: '/a/b/c', host: 'Api.Example.Com:8443' }), 'ALLOW my-app/allow-chain rule[0]');
  t.equal(decide({ path: '/a/b/c/x', host: 'blocked.example.com' }), 'ALLOW my-app/allow-chain rule[0]');
  // The DENY header rule is pathless: it denies every path; rules: [{}]-like late ALLOW never overrides it.
  t.equal(decide({ path: '/', host: 'x.test', headers: { 'x-block': 'yes', 'x-anything': '1' } }), 'DENY my-app/deny-admin rule[1]');
  t.equal(decide({ path: '/', host: 'x.test' }), 'ALLOW my-app/allow-root-exact rule[0]');
});

t.test('rules: [{}] and rules written for other paths, through the index', async (t) => {
  const compiled = compile([
    policy('allow-other-path', { rules: [to({ paths: ['/other'] })] }),
    policy('allow-all', { rules: [{}] }),
    policy('deny-never-here', { action: 'DENY', rules: [to({ paths: ['/x/{**}'] })] }),
  ]);
  const request = authzRequestFromDescription({ path: '/anything', host: 'h.test' });
  t.equal(indexedDecision(compiled, request), 'ALLOW my-app/allow-all rule[0]');
  t.equal(indexedDecision(compiled, authzRequestFromDescription({ path: '/x/', host: 'h.test' })), 'DENY my-app/deny-never-here rule[0]');
  t.equal(indexedDecision(compiled, authzRequestFromDescription({ path: '/other', host: 'h.test' })), 'ALLOW my-app/allow-other-path rule[0]');
});
