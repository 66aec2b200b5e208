import t from 'tap';
import { validateResources } from '../../gateway/config/validate.js';
import type { AuthorizationPolicySpec } from '../../gateway/config/kinds/authorization-policy.js';
import type { SidecarSpec } from '../../gateway/config/kinds/sidecar.js';
import { makeResource } from '../helpers/resources.js';

const sidecar = makeResource<SidecarSpec>(
  'Sidecar',
  'cache',
  {
    workloadSelector: { labels: { app: 'cache' } },
    ingress: [
      { port: { number: 8080, protocol: 'HTTP', name: 'http' }, defaultEndpoint: '127.0.0.1:8081' },
      { port: { number: 6379, protocol: 'TCP', name: 'tcp-redis' }, defaultEndpoint: '127.0.0.1:6380' },
    ],
  },
  { namespace: 'my-app' },
);

function policy(name: string, spec: AuthorizationPolicySpec, namespace = 'my-app'): ReturnType<typeof makeResource<AuthorizationPolicySpec>> {
  return makeResource<AuthorizationPolicySpec>('AuthorizationPolicy', name, spec, { namespace, apiVersion: 'security.istio.io/v1' });
}

function tcpWarnings(policies: ReturnType<typeof policy>[]): string[] {
  return validateResources([sidecar, ...policies])
    .filter((d) => d.code === 'MG0318')
    .map((d) => d.message);
}

t.test('a DENY with only HTTP fields selecting a TCP port warns that it denies every TCP connection', async (t) => {
  const [message] = tcpWarnings([policy('deny-post', { selector: { matchLabels: { app: 'cache' } }, action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] })]);
  t.match(message, /HTTP-only fields \(to\[0\]\.operation\.methods\).*TCP port\(s\) 6379.*denies every TCP connection/);
});

t.test('an ALLOW with an HTTP field warns that it never admits on TCP', async (t) => {
  const [message] = tcpWarnings([
    policy('allow-get', { selector: { matchLabels: { app: 'cache' } }, rules: [{ from: [{ source: { namespaces: ['my-app'] } }], to: [{ operation: { paths: ['/x'] } }] }] }),
  ]);
  t.match(message, /whole rule is dropped, so it never admits a connection/);
});

t.test('no warning when the rule is scoped with ports to the HTTP port, has no HTTP field, or selects another workload', async (t) => {
  t.same(
    tcpWarnings([
      policy('scoped', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'], ports: ['8080'] } }] }] }),
      policy('tcp-only', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }] }),
      policy('other', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
      policy('elsewhere', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }, 'other-ns'),
    ]),
    [],
  );
});

t.test('a namespace-wide DENY with one HTTP field and one TCP field warns that it matches more', async (t) => {
  const [message] = tcpWarnings([policy('mixed', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }], when: [{ key: 'request.headers[x-a]', values: ['1'] }] }] })]);
  t.match(message, /HTTP-only fields \(when\[0\]\).*the rest of the rule matches more connections/);
});
