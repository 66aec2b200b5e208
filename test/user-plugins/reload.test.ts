/**
 * Hot reload of user plugins: a changed pluginConfig and a changed module file take effect on reload;
 * a module that no longer loads is rejected and the last good snapshot keeps serving; at start an
 * unloadable module refuses the config.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { freePorts, request } from '../e2e-ingress/support.js';
import { gatewayConfig, pluginYaml, shopRoutes } from './support.js';

/** A self-contained plugin file (no imports): stamps its version and the configured label on responses. */
function versionPlugin(version: string): string {
  return `export default {
  compile: (setup) => setup.config?.label ?? 'none',
  onRequest(request, label) {
    request.setResponseHeader('x-plugin-version', '${version}');
    request.setResponseHeader('x-plugin-label', label);
  },
};
`;
}

const upstream = await startUpstream();
t.teardown(() => upstream.close());
const [adminPort, port] = (await freePorts(2)) as [number, number];
const routes = shopRoutes(`    - route: [{destination: {host: app.internal}}]\n`);
const configWith = (plugin: string): string => gatewayConfig(adminPort, port, upstream.port, [routes, plugin].join('\n'));

t.test('a module that cannot load refuses the start with the resource position', async (t) => {
  const dir = await configDir(configWith(pluginYaml({ name: 'missing', url: './nowhere.js' })));
  t.teardown(() => dir.remove());
  await t.rejects(startGateway(dir.file), /MG1501 cannot read plugin module .*nowhere\.js/);
});

t.test('config and module changes reload; a broken module keeps the last good snapshot', async (t) => {
  const dir = await configDir(configWith(pluginYaml({ name: 'versioned', url: './versioned.mjs' })));
  t.teardown(() => dir.remove());
  const moduleFile = join(dir.dir, 'versioned.mjs');
  await writeFile(moduleFile, versionPlugin('v1'));
  const gateway = await startGateway(dir.file);
  t.teardown(() => gateway.stop());
  const runtime = gateway.runtime;

  let response = await request(port, '/');
  t.equal(response.headers['x-plugin-version'], 'v1');

  await writeFile(moduleFile, versionPlugin('v2'));
  let outcome = await runtime.reload('test');
  t.equal(outcome.message, 'applied', 'a changed module file changes the snapshot even though no config file changed');
  response = await request(port, '/');
  t.equal(response.headers['x-plugin-version'], 'v2');

  await writeFile(moduleFile, 'export default { onRequest( };\n');
  outcome = await runtime.reload('test');
  t.equal(outcome.ok, false);
  response = await request(port, '/');
  t.equal(response.headers['x-plugin-version'], 'v2', 'the last good snapshot keeps serving');
  const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { lastRejected: { code: string; at: string }[] };
  t.match(dump.lastRejected, [{ code: 'MG1501', at: new RegExp(`${dir.file}:\\d+:\\d+`) }]);

  await writeFile(moduleFile, versionPlugin('v3'));
  outcome = await runtime.reload('test');
  t.equal(outcome.message, 'applied');
  response = await request(port, '/');
  t.equal(response.headers['x-plugin-version'], 'v3');
  t.equal(response.headers['x-plugin-label'], 'none');
});

t.test('a changed pluginConfig reloads', async (t) => {
  const labelPlugin = `export default {
  configSchema: { [Symbol.for('TypeBox.Kind')]: 'Object', type: 'object', properties: { label: { [Symbol.for('TypeBox.Kind')]: 'String', type: 'string' } }, required: ['label'] },
  compile: (setup) => setup.config.label,
  onRequest(request, label) { request.setResponseHeader('x-plugin-label', label); },
};
`;
  const dir = await configDir(configWith(pluginYaml({ name: 'labelled', url: './labelled.mjs', config: '{ label: first }' })));
  t.teardown(() => dir.remove());
  await writeFile(join(dir.dir, 'labelled.mjs'), labelPlugin);
  const gateway = await startGateway(dir.file);
  t.teardown(() => gateway.stop());
  t.equal((await request(port, '/')).headers['x-plugin-label'], 'first');
  await dir.write(configWith(pluginYaml({ name: 'labelled', url: './labelled.mjs', config: '{ label: second }' })));
  t.equal((await gateway.runtime.reload('test')).message, 'applied');
  t.equal((await request(port, '/')).headers['x-plugin-label'], 'second');
});
