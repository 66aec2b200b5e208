/** AuthorizationPolicy semantics (docs/policies.md#authorizationpolicy), checked through `explainRequest` on compiled policies. */
import t from 'tap';
import type { AuthorizationPolicySpec } from '../../gateway/config/kinds/authorization-policy.js';
import type { Diagnostic, Resource } from '../../gateway/config/resource.js';
import { compileAuthz } from '../../plugins/authz/compile.js';
import { explainRequest } from '../../plugins/authz/explain.js';
import type { DescribedRequest } from '../../gateway/pipeline/capabilities.js';
import { makeResource } from '../helpers/resources.js';

const SECURITY = { apiVersion: 'security.istio.io/v1' };

function policy(name: string, spec: AuthorizationPolicySpec, options: { namespace?: string; annotations?: Record<string, string> } = {}): Resource {
  return makeResource('AuthorizationPolicy', name, spec, { ...SECURITY, namespace: options.namespace ?? 'my-app', ...(options.annotations ? { annotations: options.annotations } : {}) });
}

function compile(resources: readonly Resource[], labels: Record<string, string> = { app: 'svc' }) {
  const diagnostics: Diagnostic[] = [];
  const compiled = compileAuthz({
    resources,
    mode: 'sidecar',
    workload: { name: 'w', namespace: 'my-app', labels, serviceAccount: 'svc', principal: 'cluster.local/ns/my-app/sa/svc' },
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
    diagnostics,
  });
  return { compiled, diagnostics };
}

function decide(resources: readonly Resource[], request: DescribedRequest): string {
  return explainRequest(compile(resources).compiled, request).decision;
}

const ORDER_SVC = 'cluster.local/ns/my-app/sa/order-service';

t.test('no policy → allow; ALLOW without rules → deny all; rules: [{}] → allow all', async (t) => {
  t.equal(decide([], { path: '/x' }), 'ALLOW');
  const nothing = explainRequest(compile([policy('allow-nothing', {})]).compiled, { path: '/x' });
  t.equal(nothing.decision, 'DENY');
  t.equal(nothing.details, 'rbac_access_denied_matched_policy[none]');
  t.equal(decide([policy('allow-all', { rules: [{}] })], { path: '/x' }), 'ALLOW');
  t.equal(decide([policy('deny-all', { action: 'DENY', rules: [{}] }), policy('allow-all', { rules: [{}] })], { path: '/x' }), 'DENY');
});

t.test('DENY wins over ALLOW and names the deciding policy and rule', async (t) => {
  const resources = [
    policy('allow-all', { rules: [{}] }),
    policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/public*'] } }] }, { to: [{ operation: { paths: ['/admin*'] } }] }] }),
  ];
  const result = explainRequest(compile(resources).compiled, { path: '/admin/users' });
  t.equal(result.decision, 'DENY');
  t.equal(result.policy, 'my-app/deny-admin');
  t.equal(result.ruleIndex, 1);
  t.equal(result.details, 'rbac_access_denied_matched_policy[my-app/deny-admin]');
  t.ok(result.trace.some((line) => line.includes('rule[0] did not match')));
});

t.test('only DENY policies → everything not denied is allowed; AUDIT never blocks', async (t) => {
  const resources = [
    policy('deny-delete', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
    policy('audit-all', { action: 'AUDIT', rules: [{}] }),
  ];
  t.equal(decide(resources, { method: 'GET', path: '/' }), 'ALLOW');
  t.equal(decide(resources, { method: 'DELETE', path: '/' }), 'DENY');
  const audited = explainRequest(compile(resources).compiled, { method: 'GET', path: '/' });
  t.ok(audited.trace.includes('AUDIT my-app/audit-all matched (audit only)'));
});

t.test('scope: root namespace applies everywhere, other namespaces and non-matching selectors do not', async (t) => {
  t.equal(decide([policy('mesh-deny', { action: 'DENY', rules: [{}] }, { namespace: 'istio-system' })], {}), 'DENY');
  t.equal(decide([policy('other-ns', { action: 'DENY', rules: [{}] }, { namespace: 'other' })], {}), 'ALLOW');
  t.equal(decide([policy('selected', { selector: { matchLabels: { app: 'other' } }, action: 'DENY', rules: [{}] })], {}), 'ALLOW');
  t.equal(decide([policy('selected', { selector: { matchLabels: { app: 'svc' } }, action: 'DENY', rules: [{}] })], {}), 'DENY');
});

t.test('from/to/when boolean logic: OR across entries, AND across fields and conditions', async (t) => {
  const resources = [
    policy('p', {
      rules: [
        {
          from: [{ source: { principals: [ORDER_SVC] } }, { source: { namespaces: ['ops'] } }],
          to: [{ operation: { methods: ['GET'], paths: ['/a'] } }],
          when: [{ key: 'request.headers[x-env]', values: ['prod'] }],
        },
      ],
    }),
  ];
  const good = { method: 'GET', path: '/a', peerPrincipal: ORDER_SVC, headers: { 'x-env': 'prod' } };
  t.equal(decide(resources, good), 'ALLOW');
  t.equal(decide(resources, { ...good, peerPrincipal: 'cluster.local/ns/ops/sa/anything' }), 'ALLOW', 'second from entry');
  t.equal(decide(resources, { ...good, method: 'POST' }), 'DENY', 'fields inside an operation are AND-ed');
  t.equal(decide(resources, { ...good, headers: {} }), 'DENY', 'when must hold');
  t.equal(decide(resources, { ...good, peerPrincipal: 'cluster.local/ns/x/sa/y' }), 'DENY');
});

t.test('value patterns: exact, prefix, suffix, presence; not-forms', async (t) => {
  const allowPaths = (paths: string[], notPaths?: string[]) => [policy('p', { rules: [{ to: [{ operation: { paths, ...(notPaths ? { notPaths } : {}) } }] }] })];
  t.equal(decide(allowPaths(['/info*']), { path: '/info' }), 'ALLOW', 'prefix matches the bare prefix');
  t.equal(decide(allowPaths(['/info*']), { path: '/information' }), 'ALLOW');
  t.equal(decide(allowPaths(['*/info']), { path: '/a/info' }), 'ALLOW');
  t.equal(decide(allowPaths(['/a*b']), { path: '/axxb' }), 'DENY', '* in the middle is literal');
  t.equal(decide(allowPaths(['/a*b']), { path: '/a*b' }), 'ALLOW');
  t.equal(decide(allowPaths(['*'], ['/admin*']), { path: '/admin/x' }), 'DENY');
  t.equal(decide(allowPaths(['*'], ['/admin*']), { path: '/user' }), 'ALLOW');
});

t.test('mTLS-only fields never match plaintext; not-forms do', async (t) => {
  const allow = (source: object) => [policy('p', { rules: [{ from: [{ source }] }] })];
  t.equal(decide(allow({ principals: ['*'] }), {}), 'DENY', 'presence fails without a peer');
  t.equal(decide(allow({ principals: ['*'] }), { peerPrincipal: ORDER_SVC }), 'ALLOW');
  t.equal(decide(allow({ notPrincipals: ['*'] }), {}), 'ALLOW', 'not-form succeeds on plaintext');
  t.equal(decide(allow({ principals: ['cluster.local/*'] }), { peerPrincipal: `spiffe://${ORDER_SVC}` }), 'ALLOW');
  t.equal(decide(allow({ namespaces: ['my-*'] }), { peerPrincipal: ORDER_SVC }), 'ALLOW');
  t.equal(decide(allow({ namespaces: ['m*-a*p'] }), { peerPrincipal: ORDER_SVC }), 'ALLOW', 'namespaces: inner * is a wildcard');
  t.equal(decide(allow({ namespaces: ['my-app'] }), {}), 'DENY');
  t.equal(decide(allow({ serviceAccounts: ['order-service'] }), { peerPrincipal: ORDER_SVC }), 'ALLOW', 'sa in the policy namespace');
  t.equal(decide(allow({ serviceAccounts: ['other/order-service'] }), { peerPrincipal: ORDER_SVC }), 'DENY');
  t.equal(decide(allow({ trustDomains: ['cluster.local'] }), { peerPrincipal: ORDER_SVC }), 'ALLOW');
  t.equal(decide(allow({ trustDomains: ['cluster.local'] }), {}), 'DENY');
});

t.test('requestPrincipals parsing (split at the last /)', async (t) => {
  const allow = (requestPrincipals: string[]) => [policy('p', { rules: [{ from: [{ source: { requestPrincipals } }] }] })];
  const jwt = { jwtClaims: { iss: 'https://accounts.example.com', sub: '1234' } };
  t.equal(decide(allow(['*']), jwt), 'ALLOW');
  t.equal(decide(allow(['*']), { jwtClaims: { iss: 'https://accounts.example.com' } }), 'DENY', 'a JWT without sub does not satisfy *');
  t.equal(decide(allow(['*']), {}), 'DENY');
  t.equal(decide(allow(['https://accounts.example.com/1234']), jwt), 'ALLOW', 'split at the last /');
  t.equal(decide(allow(['https://accounts.example.com/*']), jwt), 'ALLOW');
  t.equal(decide(allow(['*/1234']), jwt), 'ALLOW');
  t.equal(decide(allow(['https://accounts.*']), jwt), 'DENY', 'a / in the value means iss/sub split: iss `https:/` never matches');
  t.equal(decide(allow(['idp*']), { jwtClaims: { iss: 'idp-one', sub: 'x' } }), 'ALLOW', 'prefix* without / matches the issuer');
  t.equal(decide(allow(['https://other.example.com/1234']), jwt), 'DENY');
  t.equal(decide(allow(['*34']), jwt), 'ALLOW', '*suffix without / matches sub');
  const denyAnon = [policy('require-jwt', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }], to: [{ operation: { paths: ['/admin*'] } }] }] })];
  t.equal(decide(denyAnon, { path: '/admin' }), 'DENY', 'notRequestPrincipals * in DENY requires a JWT');
  t.equal(decide(denyAnon, { path: '/admin', ...jwt }), 'ALLOW');
});

t.test('ipBlocks / remoteIpBlocks with IPv4, IPv6, CIDR and IPv4-mapped peers', async (t) => {
  const allow = (source: object) => [policy('p', { rules: [{ from: [{ source }] }] })];
  t.equal(decide(allow({ ipBlocks: ['10.0.0.0/8'] }), { sourceIp: '10.1.2.3' }), 'ALLOW');
  t.equal(decide(allow({ ipBlocks: ['10.0.0.0/8'] }), { sourceIp: '::ffff:10.1.2.3' }), 'ALLOW', 'mapped IPv4');
  t.equal(decide(allow({ ipBlocks: ['10.0.0.0/8'] }), { sourceIp: '11.0.0.1' }), 'DENY');
  t.equal(decide(allow({ ipBlocks: ['2001:db8::/32'] }), { sourceIp: '2001:db8:1::5' }), 'ALLOW');
  t.equal(decide(allow({ ipBlocks: ['2001:db8::/32'] }), { sourceIp: '2001:db9::5' }), 'DENY');
  t.equal(decide(allow({ ipBlocks: ['192.168.1.7'] }), { sourceIp: '192.168.1.7' }), 'ALLOW', 'single IP');
  t.equal(decide(allow({ notIpBlocks: ['192.168.0.0/16'] }), { sourceIp: '192.168.1.7' }), 'DENY');
  t.equal(decide(allow({ remoteIpBlocks: ['203.0.113.0/24'] }), { sourceIp: '10.0.0.1', remoteIp: '203.0.113.9' }), 'ALLOW');
  t.equal(decide(allow({ ipBlocks: ['203.0.113.0/24'] }), { sourceIp: '10.0.0.1', remoteIp: '203.0.113.9' }), 'DENY', 'ipBlocks is the direct peer');
});

t.test('hosts are case-insensitive and see the port; ports and methods', async (t) => {
  const allowHosts = (hosts: string[]) => [policy('p', { rules: [{ to: [{ operation: { hosts } }] }] })];
  t.equal(decide(allowHosts(['example.com']), { host: 'EXAMPLE.com' }), 'ALLOW', 'bypass: mixed-case host');
  t.equal(decide(allowHosts(['example.com']), { host: 'example.com:8080' }), 'DENY', 'bypass: host with port is a different host');
  t.equal(decide(allowHosts(['example.com', 'example.com:*']), { host: 'example.com:8080' }), 'ALLOW');
  t.equal(decide(allowHosts(['*.example.com']), { host: 'api.Example.COM' }), 'ALLOW');
  const ports = [policy('p', { rules: [{ to: [{ operation: { ports: ['8080'] } }] }] })];
  t.equal(decide(ports, { destinationPort: 8080 }), 'ALLOW');
  t.equal(decide(ports, { destinationPort: 9090 }), 'DENY');
  const methods = [policy('p', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })];
  t.equal(decide(methods, { method: 'get' }), 'DENY', 'methods are case-sensitive');
});

t.test('path templates {*} and {**}', async (t) => {
  const allow = (paths: string[]) => [policy('p', { rules: [{ to: [{ operation: { paths } }] }] })];
  t.equal(decide(allow(['/foo/{*}/bar']), { path: '/foo/x/bar' }), 'ALLOW');
  t.equal(decide(allow(['/foo/{*}/bar']), { path: '/foo/x/y/bar' }), 'DENY');
  t.equal(decide(allow(['/foo/{*}/bar']), { path: '/foo//bar' }), 'DENY');
  t.equal(decide(allow(['/foo/{**}/']), { path: '/foo/bar/' }), 'ALLOW');
  t.equal(decide(allow(['/foo/{**}/']), { path: '/foo//' }), 'ALLOW');
  t.equal(decide(allow(['/foo/{**}/']), { path: '/foo/bar' }), 'DENY');
  t.equal(decide(allow(['/foo/{**}']), { path: '/foo/a/b/c' }), 'ALLOW');
  const { diagnostics } = compile(allow(['/foo/{**}/{*}']));
  t.equal(diagnostics[0]?.code, 'MG0315', '{**} must be last');
  t.equal(compile(allow(['/foo/x{*}'])).diagnostics[0]?.code, 'MG0315');
});

t.test('when keys', async (t) => {
  const when = (key: string, values?: string[], notValues?: string[]) => [
    policy('p', { rules: [{ when: [{ key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) }] }] }),
  ];
  const claims = { iss: 'https://idp', sub: 'u1', aud: ['api', 'web'], azp: 'cli', scope: 'read write', groups: ['dev', 'ops'], org: { team: { name: 'core' } } };
  t.equal(decide(when('request.auth.claims[groups]', ['ops']), { jwtClaims: claims }), 'ALLOW', 'list claim: any element');
  t.equal(decide(when('request.auth.claims[groups]', undefined, ['ops']), { jwtClaims: claims }), 'DENY', 'list claim notValues: no element');
  t.equal(decide(when('request.auth.claims[scope]', ['write']), { jwtClaims: claims }), 'ALLOW', 'scope split on spaces');
  t.equal(decide(when('request.auth.claims[org][team][name]', ['core']), { jwtClaims: claims }), 'ALLOW', 'nested claim');
  t.equal(decide(when('request.auth.claims[org][team][name]', ['core']), {}), 'DENY');
  t.equal(decide(when('request.auth.audiences', ['web']), { jwtClaims: claims }), 'ALLOW');
  t.equal(decide(when('request.auth.presenter', ['cli']), { jwtClaims: claims }), 'ALLOW');
  t.equal(decide(when('request.auth.principal', ['https://idp/u1']), { jwtClaims: claims }), 'ALLOW');
  t.equal(decide(when('request.headers[X-Tenant]', ['a,b']), { headers: { 'x-tenant': ['a', 'b'] } }), 'ALLOW', 'repeated headers joined with ,');
  t.equal(decide(when('request.headers[x-tenant]', ['*']), { headers: {} }), 'DENY', 'presence needs the header');
  t.equal(decide(when('source.ip', ['10.0.0.0/8']), { sourceIp: '10.9.9.9' }), 'ALLOW');
  t.equal(decide(when('remote.ip', ['1.2.3.4']), { sourceIp: '10.0.0.1', remoteIp: '1.2.3.4' }), 'ALLOW');
  t.equal(decide(when('destination.ip', ['127.0.0.1']), { destinationIp: '127.0.0.1' }), 'ALLOW');
  t.equal(decide(when('destination.port', ['8443']), { destinationPort: 8443 }), 'ALLOW');
  t.equal(decide(when('connection.sni', ['*.example.com']), { sni: 'a.example.com' }), 'ALLOW');
  t.equal(decide(when('source.namespace', ['my-app']), { peerPrincipal: ORDER_SVC }), 'ALLOW');
  t.equal(decide(when('source.principal', [ORDER_SVC]), { peerPrincipal: ORDER_SVC }), 'ALLOW');
  t.equal(decide(when('source.serviceAccount', ['my-app/order-service']), { peerPrincipal: ORDER_SVC }), 'ALLOW');
  t.equal(decide(when('source.trustDomain', ['cluster.local']), {}), 'DENY');
  const unknown = compile(when('destination.labels[app]', ['x']));
  t.equal(unknown.diagnostics[0]?.code, 'MG0302');
  t.equal(explainRequest(unknown.compiled, {}).decision, 'DENY', 'a rule with an unknown key is dropped (ALLOW then matches nothing)');
});

t.test('invalid fields are reported with their position and drop the rule', async (t) => {
  const { diagnostics } = compile([policy('p', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }, { to: [] }] })]);
  t.same(diagnostics.map((d) => [d.code, d.field]), [
    ['MG0304', 'spec.rules[0].from[0].source.ipBlocks'],
    ['MG0303', 'spec.rules[1].to'],
  ]);
  t.equal(compile([policy('d', { action: 'DENY' })]).diagnostics[0]?.code, 'MG0301');
  t.equal(compile([policy('c', { action: 'CUSTOM', provider: { name: 'nope' }, rules: [{}] })]).diagnostics[0]?.code, 'MG0306');
});

t.test('dry-run policies are evaluated but not enforced', async (t) => {
  const resources = [policy('dry-deny', { action: 'DENY', rules: [{}] }, { annotations: { 'istio.io/dry-run': 'true' } })];
  const result = explainRequest(compile(resources).compiled, { path: '/' });
  t.equal(result.decision, 'ALLOW');
  t.ok(result.trace.some((line) => line.startsWith('with dry-run policies enforced: DENY (my-app/dry-deny')));
});
