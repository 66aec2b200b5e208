/**
 * A reload compiles only the VirtualServices whose documents changed (compile-route.ts): the others
 * keep the routes an earlier compile built, while every rule it dropped is still reported at the
 * document's current line.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Diagnostic } from '../../gateway/config/resource.js';
import type { CompiledConfig } from '../../gateway/snapshot/snapshot.js';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import type { CompiledRoute } from '../../gateway/router/types.js';
import { buildGatewayRouteTables } from '../../gateway/router/gateway-binding.js';
import { makeResource } from '../helpers/resources.js';
import { mustRoute, request, virtualService } from './support.js';

const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: public, namespace: edge }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 8080, name: http, protocol: HTTP }
      hosts: ['*']
`;

const virtualServiceA = (destination: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: a, namespace: edge }
spec:
  hosts: [a.example.com]
  gateways: [public]
  http:
    - route: [{ destination: { host: ${destination} } }]
`;

/** Its first rule delegates, which routing does not support: the rule is dropped with MG0701. */
const VIRTUAL_SERVICE_B = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: b, namespace: edge }
spec:
  hosts: [b.example.com]
  gateways: [public]
  http:
    - match: [{ uri: { prefix: /old } }]
      delegate: { name: old, namespace: edge }
    - route: [{ destination: { host: b.internal } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: old, namespace: edge }
spec:
  http:
    - route: [{ destination: { host: b.internal } }]
`;

async function compile(path: string, text: string): Promise<CompiledConfig> {
  await writeFile(path, text);
  const result = await compileConfig(path, { mode: 'ingress', plugins: [] });
  if (!result.ok) throw new Error(`does not compile: ${result.diagnostics.map((d) => d.message).join('; ')}`);
  return result.config;
}

function routeTo(config: CompiledConfig, url: string): CompiledRoute {
  const table = config.gatewayRoutes.get(8080);
  if (table === undefined) throw new Error('no route table for port 8080');
  return mustRoute(table, request(url, { port: 8080 }));
}

const forwardedHost = (route: CompiledRoute): string | undefined => (route.action.kind === 'forward' ? route.action.destinations[0]?.host : undefined);
const dropped = (diagnostics: readonly Diagnostic[]): [number, string][] =>
  diagnostics.filter((d) => d.code === 'MG0701').map((d) => [d.position.line, `${d.name}:${d.field ?? ''}`]);

t.test('a reload keeps the routes of unchanged VirtualServices and compiles the changed ones', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-compiled-reuse-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, 'config.yaml');

  const first = await compile(path, [GATEWAY, virtualServiceA('a.internal'), VIRTUAL_SERVICE_B].join('---\n'));
  t.same(dropped(first.diagnostics), [[27, 'b:spec.http[0].delegate']], 'the delegating rule is dropped');

  // A comment above everything moves every document one line down; a's destination changes.
  const second = await compile(path, [`# edited\n${GATEWAY}`, virtualServiceA('a-v2.internal'), VIRTUAL_SERVICE_B].join('---\n'));
  t.equal(routeTo(second, 'http://b.example.com/'), routeTo(first, 'http://b.example.com/'), "b's document did not change: its route is the one compiled before");
  t.not(routeTo(second, 'http://a.example.com/'), routeTo(first, 'http://a.example.com/'), "a's document changed: its route is compiled anew");
  t.equal(forwardedHost(routeTo(second, 'http://a.example.com/')), 'a-v2.internal', 'and sends to the new destination');
  t.same(dropped(second.diagnostics), [[28, 'b:spec.http[0].delegate']], 'the kept routes report their dropped rule at its new line');
});

t.test('routes are compiled anew for each scope a VirtualService is bound in', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-compiled-scope-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, 'config.yaml');
  const secondPort = GATEWAY.replace("hosts: ['*']", "hosts: ['*']\n    - port: { number: 9090, name: http-alt, protocol: HTTP }\n      hosts: ['*']");
  const config = await compile(path, [secondPort, virtualServiceA('a.internal')].join('---\n'));
  const [on8080, on9090] = [8080, 9090].map((port) => {
    const table = config.gatewayRoutes.get(port);
    if (table === undefined) throw new Error(`no route table for port ${port}`);
    return mustRoute(table, request('http://a.example.com/', { port }));
  });
  t.not(on8080, on9090, 'one compile per listener port');
});

t.test('a spec that is not frozen may still change: its routes are compiled every time', async (t) => {
  const spec = { hosts: ['a.example.com'], gateways: ['edge/public'], http: [{ route: [{ destination: { host: 'a.internal' } }] }] };
  const gateway = makeResource('Gateway', 'public', { servers: [{ port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts: ['*'] }] }, { namespace: 'edge' });
  const resource = virtualService('a', spec, 'edge');
  const build = (): CompiledRoute => {
    const table = buildGatewayRouteTables({ gateways: [gateway], virtualServices: [resource], proxyLabels: {}, proxyNamespace: 'edge' }).get(80);
    if (table === undefined) throw new Error('no route table for port 80');
    return mustRoute(table, request('http://a.example.com/'));
  };
  t.equal(forwardedHost(build()), 'a.internal');
  spec.http[0] = { route: [{ destination: { host: 'a-v2.internal' } }] };
  t.equal(forwardedHost(build()), 'a-v2.internal');
});
