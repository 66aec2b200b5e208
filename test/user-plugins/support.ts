/** Config builders shared by the user-plugin tests: a gateway on loopback and Plugin resources. */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gatewayYaml, httpServerYaml, meshConfigYaml, serviceEntryYaml } from '../e2e-ingress/support.js';

/** file:// URL of a compiled test fixture plugin (dist/test/user-plugins/fixtures/<name>.js). */
export function fixtureUrl(name: string): string {
  return pathToFileURL(fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url))).href;
}

/** file:// URL of a compiled example plugin (dist/examples/plugins/<name>/index.js). */
export function exampleUrl(name: string): string {
  return new URL(`../../examples/plugins/${name}/index.js`, import.meta.url).href;
}

export interface PluginResource {
  readonly name: string;
  readonly url: string;
  readonly phase?: string;
  readonly priority?: number;
  readonly failStrategy?: string;
  readonly config?: string;
  /** Extra spec lines (already indented by 2). */
  readonly extra?: string;
  readonly kind?: 'Plugin' | 'WasmPlugin';
}

export function pluginYaml(plugin: PluginResource): string {
  const apiVersion = plugin.kind === 'WasmPlugin' ? 'extensions.istio.io/v1alpha1' : 'meshgate.dev/v1alpha1';
  return `---
apiVersion: ${apiVersion}
kind: ${plugin.kind ?? 'Plugin'}
metadata: { name: ${plugin.name}, namespace: istio-system }
spec:
  url: "${plugin.url}"
${plugin.phase === undefined ? '' : `  phase: ${plugin.phase}\n`}${plugin.priority === undefined ? '' : `  priority: ${plugin.priority}\n`}${plugin.failStrategy === undefined ? '' : `  failStrategy: ${plugin.failStrategy}\n`}${plugin.config === undefined ? '' : `  pluginConfig: ${plugin.config}\n`}${plugin.extra ?? ''}`;
}

/** MeshConfig + a Gateway on `port` for any host + a ServiceEntry `app.internal` → the upstream, and `rest` appended. */
export function gatewayConfig(adminPort: number, port: number, upstreamPort: number, rest: string): string {
  return [meshConfigYaml(adminPort), gatewayYaml('edge', httpServerYaml(port, ['*'])), serviceEntryYaml('app', 'app.internal', [{ port: upstreamPort }]), rest].join('\n');
}

/** A VirtualService `shop` (namespace default) on the edge Gateway; `rules` are YAML list items indented by 4. */
export function shopRoutes(rules: string): string {
  return `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/edge]
  http:
${rules}`;
}
