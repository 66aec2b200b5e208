/**
 * Hot reload from the watched config directory: a plain write and an editor-style save (temp file
 * renamed over the config) both apply; an invalid change is rejected, logged with file:line, counted,
 * and the last good configuration keeps serving.
 */
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { renderPrometheus } from '../../plugins/metrics/index.js';
import { accepts, eventually, ingressYaml, invalidIngressYaml, json, request } from './fixtures.js';

const upstream = await startUpstream();
const config = { adminPort: await freePort(), gatewayPort: await freePort(), upstreamPort: upstream.port };
const dir = await configDir(ingressYaml(config));
const gateway = await startGateway(dir.dir, { watch: true });

t.teardown(async () => {
  await gateway.stop();
  await upstream.close();
  await dir.remove();
});

async function servedVersion(): Promise<string | undefined> {
  const response = await request(`http://127.0.0.1:${config.gatewayPort}/`);
  return response.status === 200 ? (response.headers['x-config-version'] as string | undefined) : `status ${response.status}`;
}

async function rejectedReloads(): Promise<number> {
  const { body } = await renderPrometheus();
  return Number(/^meshgate_config_reloads_total\{result="rejected"\} (\d+)$/m.exec(body)?.[1] ?? 0);
}

t.test('writing the file in the watched directory applies the new route', async (t) => {
  t.equal(await servedVersion(), '1');
  await dir.write(ingressYaml({ ...config, version: '2' }));
  t.ok(await eventually(async () => (await servedVersion()) === '2'), 'version 2 served');
  t.equal(gateway.runtime.current().generation, 2);
  t.ok(gateway.logs.some((line) => line.msg === 'configuration reloaded' && line.trigger === 'file change' && line.generation === 2));
});

t.test('an editor-style save (write a temp file, rename it over the config) is picked up', async (t) => {
  const temp = join(dir.dir, '.mesh.yaml.swp');
  await writeFile(temp, ingressYaml({ ...config, version: '3' }));
  await rename(temp, dir.file);
  t.ok(await eventually(async () => (await servedVersion()) === '3'), 'version 3 served');
  t.equal(gateway.runtime.current().generation, 3);
  t.same(gateway.runtime.current().files, [dir.file], 'the swap file is gone and was never part of the config');
});

t.test('an invalid change is rejected, logged with file:line, counted, and the old config keeps serving', async (t) => {
  const rejectedBefore = await rejectedReloads();
  const logsBefore = gateway.logs.length;
  await dir.write(invalidIngressYaml({ ...config, version: '4' }));
  t.ok(await eventually(() => gateway.logs.slice(logsBefore).some((line) => line.msg === 'new configuration rejected; the last good one keeps serving')));
  const regexLine = invalidIngressYaml(config).split('\n').findIndex((line) => line.includes('(unclosed')) + 1;
  t.match(
    gateway.logs.slice(logsBefore).find((line) => line.code === 'MG0207'),
    { level: 50, file: dir.file, line: regexLine, msg: /invalid RE2 regex "\(unclosed"/ },
    'the error names the file and line',
  );
  t.equal(await rejectedReloads(), rejectedBefore + 1, 'meshgate_config_reloads_total{result="rejected"} counted it');
  t.equal(gateway.runtime.current().generation, 3, 'generation unchanged');
  t.equal(await servedVersion(), '3', 'the last good route still serves');

  await dir.write(ingressYaml({ ...config, version: '5' }));
  t.ok(await eventually(async () => (await servedVersion()) === '5'), 'a fixed config applies again');
  t.equal(gateway.runtime.current().generation, 4);
});

t.test('a reload that moves the Gateway to another port opens the new listener and closes the old one', async (t) => {
  const movedPort = await freePort();
  await dir.write(ingressYaml({ ...config, gatewayPort: movedPort, version: '6' }));
  t.ok(await eventually(async () => (await request(`http://127.0.0.1:${movedPort}/`)).headers['x-config-version'] === '6'), 'new port serves');
  t.ok(await eventually(async () => !(await accepts(config.gatewayPort))), 'old port closed');
  await dir.write(ingressYaml({ ...config, version: '7' }));
  t.ok(await eventually(async () => (await servedVersion()) === '7'), 'and back');
});

t.test('a Kubernetes ConfigMap volume (files are symlinks through ..data, swapped atomically) loads and reloads', async (t) => {
  const configMap = await configDir('# placeholder\n', '.placeholder');
  const gatewayPort = await freePort();
  const adminPort = await freePort();
  const mounted = { adminPort, gatewayPort, upstreamPort: upstream.port };
  const publish = async (revision: string, version: string): Promise<void> => {
    await mkdir(join(configMap.dir, revision));
    await writeFile(join(configMap.dir, revision, 'mesh.yaml'), ingressYaml({ ...mounted, version }));
    await symlink(revision, join(configMap.dir, '..data_tmp'));
    await rename(join(configMap.dir, '..data_tmp'), join(configMap.dir, '..data'));
  };
  await publish('..2024_01', 'cm-1');
  await symlink('..data/mesh.yaml', join(configMap.dir, 'mesh.yaml'));
  const mountedGateway = await startGateway(configMap.dir, { watch: true, adminAddress: `127.0.0.1:${adminPort}` });
  t.teardown(async () => {
    await mountedGateway.stop();
    await configMap.remove();
  });
  const version = async () => (await request(`http://127.0.0.1:${gatewayPort}/`)).headers['x-config-version'];
  t.equal(await version(), 'cm-1');
  await publish('..2024_02', 'cm-2');
  t.ok(await eventually(async () => (await version()) === 'cm-2'), 'the ..data swap was picked up');
});

t.test('a reload that changes a restart-only MeshConfig field says so and keeps the running admin port', async (t) => {
  const logsBefore = gateway.logs.length;
  const otherAdminPort = await freePort();
  await dir.write(ingressYaml({ ...config, adminPort: otherAdminPort, version: '8' }));
  t.ok(await eventually(async () => (await servedVersion()) === '8'), 'the rest of the config applied');
  t.match(
    gateway.logs.slice(logsBefore).find((line) => line.level === 40 && Array.isArray(line.fields)),
    { fields: ['adminAddress'], msg: /take effect only after a restart/ },
  );
  t.equal((await request(`http://127.0.0.1:${config.adminPort}/ready`)).status, 200, 'admin still on its original port');
  t.equal(await accepts(otherAdminPort), false);
});

t.test('fixing a rejected config back to the running content clears the rejection, the error gauge, and says so', async (t) => {
  const running = ingressYaml({ ...config, version: '9' });
  await dir.write(running);
  t.ok(await eventually(async () => (await servedVersion()) === '9'), 'version 9 runs');
  const errorGauge = async (): Promise<number> => Number(/^meshgate_config_diagnostics\{severity="error"\} (\d+)$/m.exec((await renderPrometheus()).body)?.[1] ?? -1);
  const lastRejected = async (): Promise<unknown[]> => (await json(`http://127.0.0.1:${config.adminPort}/config_dump`)).body.lastRejected as unknown[];
  const rejectedBefore = await rejectedReloads();
  await dir.write(invalidIngressYaml({ ...config, version: '9' }));
  t.ok(await eventually(async () => (await rejectedReloads()) > rejectedBefore), 'the broken file is rejected');
  t.equal((await lastRejected()).length, 1, '/config_dump shows the rejection');
  t.equal(await errorGauge(), 1);
  const logsBefore = gateway.logs.length;
  const generation = gateway.runtime.current().generation;
  await dir.write(running);
  t.ok(await eventually(async () => (await lastRejected()).length === 0), '/config_dump no longer shows a rejection');
  t.equal(await errorGauge(), 0, 'meshgate_config_diagnostics{severity="error"} is 0 again');
  t.equal(gateway.logs.slice(logsBefore).filter((line) => /valid again/.test(String(line.msg))).length, 1, 'one log line says the file is valid again');
  t.equal(gateway.runtime.current().generation, generation, 'nothing was swapped');
});
