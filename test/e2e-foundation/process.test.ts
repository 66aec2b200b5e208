/**
 * `meshgate run` as a real process: SIGHUP reloads, POST /shutdown exits 0, and a port already taken
 * at start exits non-zero without leaving anything listening.
 */
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { configDir, startUpstream } from '../helpers/gateway.js';
import { accepts, eventually, exitWithin, ingressYaml, ports, request, runGateway, spawnCli } from './fixtures.js';

t.test('SIGHUP reloads the config (a change the directory watch cannot see)', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const config = await ports(upstream.port);
  // The gateway watches the directory of the path it was given; the real file lives elsewhere, so only SIGHUP reloads.
  const real = await configDir(ingressYaml(config));
  const linked = await mkdtemp(join(tmpdir(), 'meshgate-link-'));
  t.teardown(() => Promise.all([real.remove(), rm(linked, { recursive: true, force: true })]));
  await symlink(real.file, join(linked, 'mesh.yaml'));
  const cli = await runGateway(t, join(linked, 'mesh.yaml'), config.adminPort);
  const version = async () => (await request(`http://127.0.0.1:${config.gatewayPort}/`)).headers['x-config-version'];
  t.equal(await version(), '1');

  await writeFile(real.file, ingressYaml({ ...config, version: '2' }));
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal(await version(), '1', 'not reloaded without a signal');
  cli.child.kill('SIGHUP');
  t.ok(await eventually(async () => (await version()) === '2'), 'SIGHUP applied the new route');
  t.ok(await eventually(() => /"trigger":"SIGHUP","generation":2[^\n]*configuration reloaded/.test(cli.stdout())), 'reload logged with its trigger');
  t.notMatch(cli.stdout(), /in-memory CA/, 'an ingress without mesh upstreams never presents its identity: no CA warning');
  t.match(cli.stdout(), `Server listening at http://127.0.0.1:${config.gatewayPort}`);
});

t.test('POST /shutdown from loopback: the process drains and exits 0', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const config = await ports(upstream.port);
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = await runGateway(t, dir.file, config.adminPort);
  const response = await request(`http://127.0.0.1:${config.adminPort}/shutdown`, { method: 'POST' });
  t.equal(response.status, 200);
  t.same(JSON.parse(response.body), { shuttingDown: true });
  t.equal(await exitWithin(cli, 20_000), 0);
  t.match(cli.stdout(), /"trigger":"admin"[^\n]*draining/);
  t.match(cli.stdout(), /meshgate stopped/);
});

t.test('a port already taken at start: exit 1, the error names the address, nothing left listening', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const config = await ports(upstream.port);
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(config.adminPort, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = spawnCli(['run', '-c', dir.file]);
  t.teardown(() => cli.kill());
  t.equal(await exitWithin(cli, 60_000), 1, 'non-zero exit');
  t.match(cli.stdout(), new RegExp(`EADDRINUSE[^\\n]*127\\.0\\.0\\.1:${config.adminPort}[^\\n]*meshgate failed to start`));
  t.equal(await accepts(config.gatewayPort), false, 'the gateway listener opened before the failure was closed');
});
