/**
 * AuthorizationPolicy on a TCP port (Istio's HTTP-only field rules): the cache sidecar's inbound TCP
 * port in front of a private redis, called through the client sidecar (mesh mTLS, so the client's
 * principal is known). A denied connection is closed before a byte reaches redis.
 */
import t from 'tap';
import { rawExchange, startTcpMesh, tcpMeshYaml } from './tcp-fixture.js';
import type { TcpMesh } from './tcp-fixture.js';

let mesh: TcpMesh;
t.before(async () => {
  mesh = await startTcpMesh();
});
t.teardown(() => mesh.close());

async function withPolicies(policies: string): Promise<void> {
  await mesh.config.write(tcpMeshYaml(mesh.pki, mesh.ports, mesh.redis.port, mesh.httpApp.port, { extraYaml: () => policies }));
  const outcome = await mesh.cache.runtime.reload('test');
  if (!outcome.ok) throw new Error(`reload refused: ${JSON.stringify(outcome)}`);
}

const PING = 'PING\r\n';
const PONG = '+PONG\r\n';

function policy(name: string, body: string): string {
  return `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: my-app }
spec:
  selector: { matchLabels: { app: cache } }
${body}
`;
}

t.test('no policy: the connection goes through', async (t) => {
  await withPolicies('');
  t.equal((await rawExchange(mesh.ports.egress, PING, 2_000)).received, PONG);
});

t.test('DENY with only an HTTP-only field (methods) denies every TCP connection: closed, nothing relayed', async (t) => {
  await withPolicies(policy('deny-post', `  action: DENY\n  rules: [{ to: [{ operation: { methods: [POST] } }] }]`));
  const outcome = await rawExchange(mesh.ports.egress, PING);
  t.same(outcome, { received: '', closed: true });
});

t.test('the same DENY scoped with ports to the HTTP port leaves the TCP port alone', async (t) => {
  await withPolicies(policy('deny-post', `  action: DENY\n  rules: [{ to: [{ operation: { methods: [POST], ports: ["${mesh.ports.cacheHttpInbound}"] } }] }]`));
  t.equal((await rawExchange(mesh.ports.egress, PING, 2_000)).received, PONG);
});

t.test('DENY keeps its TCP fields: a principal that is not the caller does not deny', async (t) => {
  await withPolicies(policy('deny-other', `  action: DENY\n  rules: [{ from: [{ source: { principals: [cluster.local/ns/my-app/sa/other] } }], to: [{ operation: { methods: [GET] } }] }]`));
  t.equal((await rawExchange(mesh.ports.egress, PING, 2_000)).received, PONG);
  await withPolicies(policy('deny-client', `  action: DENY\n  rules: [{ from: [{ source: { principals: [cluster.local/ns/my-app/sa/client] } }], to: [{ operation: { methods: [GET] } }] }]`));
  t.same(await rawExchange(mesh.ports.egress, PING), { received: '', closed: true });
});

t.test('an ALLOW rule with an HTTP-only field never matches on TCP: the caller is denied', async (t) => {
  await withPolicies(policy('allow-get', `  action: ALLOW\n  rules: [{ from: [{ source: { principals: [cluster.local/ns/my-app/sa/client] } }], to: [{ operation: { methods: [GET] } }] }]`));
  t.same(await rawExchange(mesh.ports.egress, PING), { received: '', closed: true });
});

t.test('an ALLOW rule with TCP fields only (principal, port) admits the caller over mesh mTLS', async (t) => {
  await withPolicies(
    policy('allow-client', `  action: ALLOW\n  rules: [{ from: [{ source: { principals: [cluster.local/ns/my-app/sa/client] } }], to: [{ operation: { ports: ["${mesh.ports.cacheInbound}"] } }] }]`),
  );
  t.equal((await rawExchange(mesh.ports.egress, PING, 2_000)).received, PONG);
  await withPolicies(policy('allow-other', `  action: ALLOW\n  rules: [{ from: [{ source: { principals: [cluster.local/ns/my-app/sa/other] } }] }]`));
  t.same(await rawExchange(mesh.ports.egress, PING), { received: '', closed: true });
});
