/**
 * `meshgate run` as a real process: SIGHUP reloads, POST /shutdown exits 0, and SIGTERM drains —
 * /ready turns 503, the listener stops accepting, in-flight requests finish, and the process exits
 * within MeshConfig drainDuration; a request still running at the deadline is cut.
 */
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { configDir, freePort, startUpstream } from '../helpers/gateway.js';
import { accepts, eventually, ingressYaml, request, spawnCli } from './fixtures.js';
import type { CliProcess, IngressConfig } from './fixtures.js';

async function runGateway(t: Test, configPath: string, adminPort: number): Promise<CliProcess> {
  const cli = spawnCli(['run', '-c', configPath]);
  t.teardown(() => cli.kill());
  const ready = await eventually(async () => (await request(`http://127.0.0.1:${adminPort}/ready`)).status === 200, 15_000);
  if (!ready) throw new Error(`gateway did not become ready:\n${cli.stdout()}\n${cli.stderr()}`);
  return cli;
}

async function ports(upstreamPort: number, drainDuration?: string): Promise<IngressConfig> {
  return { adminPort: await freePort(), gatewayPort: await freePort(), upstreamPort, ...(drainDuration === undefined ? {} : { drainDuration }) };
}

/** Resolves with the exit code, or null when the process is still running after `ms`. */
async function exitWithin(cli: CliProcess, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  const code = await Promise.race([cli.exited, timeout]);
  clearTimeout(timer);
  return code;
}

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
  t.equal(await exitWithin(cli, 5000), 0);
  t.match(cli.stdout(), /"trigger":"admin"[^\n]*draining/);
  t.match(cli.stdout(), /meshgate stopped/);
});

t.test('SIGTERM drains: in-flight requests finish, /ready 503, listener closed, exit 0 before the deadline', async (t) => {
  const slow = await startUpstream((_request, response) => setTimeout(() => response.end('slow done'), 1000));
  t.teardown(() => slow.close());
  const config = await ports(slow.port, '4s');
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = await runGateway(t, dir.file, config.adminPort);

  const inFlight = Array.from({ length: 4 }, (_, i) => request(`http://127.0.0.1:${config.gatewayPort}/slow/${i}`, { timeoutMs: 8000 }));
  t.ok(await eventually(() => slow.received.length === 4, 3000), 'all four requests reached the upstream');
  const signalledAt = Date.now();
  cli.child.kill('SIGTERM');

  t.ok(
    await eventually(async () => (await request(`http://127.0.0.1:${config.adminPort}/ready`)).status === 503, 900),
    '/ready is 503 while draining',
  );
  t.equal(await accepts(config.gatewayPort), false, 'new connections are refused once the listener closed');
  const responses = await Promise.all(inFlight);
  t.same(
    responses.map((r) => [r.status, r.body]),
    responses.map(() => [200, 'slow done']),
    'every in-flight request completed',
  );
  t.equal(await exitWithin(cli, 4000 + 1000), 0, 'exit 0 within drainDuration');
  t.ok(Date.now() - signalledAt < 4000, `exited after ${Date.now() - signalledAt} ms, before the 4 s deadline`);
});

t.test('a request still running at the drain deadline is cut and the process still exits', async (t) => {
  const stuck = await startUpstream((_request, response) => setTimeout(() => response.end('too late'), 8000));
  t.teardown(() => stuck.close());
  const config = await ports(stuck.port, '1s');
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = await runGateway(t, dir.file, config.adminPort);

  const outcome = request(`http://127.0.0.1:${config.gatewayPort}/stuck`, { timeoutMs: 8000 }).then(
    (response) => `status ${response.status}`,
    (error: Error) => `error ${error.message}`,
  );
  t.ok(await eventually(() => stuck.received.length === 1, 3000), 'the request reached the upstream');
  const signalledAt = Date.now();
  cli.child.kill('SIGTERM');
  t.equal(await exitWithin(cli, 4000), 0, 'exit 0 despite the stuck request');
  const elapsed = Date.now() - signalledAt;
  t.ok(elapsed >= 900 && elapsed < 3000, `exited ${elapsed} ms after SIGTERM (deadline 1 s)`);
  t.notMatch(await outcome, /^status 200/, 'the stuck request did not complete');
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
  t.equal(await exitWithin(cli, 15_000), 1, 'non-zero exit');
  t.match(cli.stdout(), new RegExp(`EADDRINUSE[^\\n]*127\\.0\\.0\\.1:${config.adminPort}[^\\n]*meshgate failed to start`));
  t.equal(await accepts(config.gatewayPort), false, 'the gateway listener opened before the failure was closed');
});
