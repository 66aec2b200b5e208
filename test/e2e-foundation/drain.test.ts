/**
 * Drain on SIGTERM (`meshgate run` as a real process): /ready turns 503, the listener stops accepting,
 * in-flight requests finish, and the process exits 0 within MeshConfig drainDuration; a request still
 * running at the deadline is cut and the process exits all the same.
 */
import type { ServerResponse } from 'node:http';
import t from 'tap';
import { configDir, startUpstream } from '../helpers/gateway.js';
import { accepts, eventually, exitWithin, ingressYaml, ports, request, runGateway, spawnCli } from './fixtures.js';

t.test('SIGTERM drains: in-flight requests finish, /ready 503, listener closed, exit 0 before the deadline', async (t) => {
  // The upstream answers only when the test says so: the drain must wait for it, however slow the machine.
  const held: ServerResponse[] = [];
  const slow = await startUpstream((_request, response) => void held.push(response));
  t.teardown(() => slow.close());
  const config = await ports(slow.port, '30s');
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = await runGateway(t, dir.file, config.adminPort);

  const inFlight = Array.from({ length: 4 }, (_, i) => request(`http://127.0.0.1:${config.gatewayPort}/slow/${i}`, { timeoutMs: 60_000 }));
  t.ok(await eventually(() => slow.received.length === 4), 'all four requests reached the upstream');
  const signalledAt = Date.now();
  cli.child.kill('SIGTERM');

  t.ok(await eventually(async () => (await request(`http://127.0.0.1:${config.adminPort}/ready`)).status === 503), '/ready is 503 while draining');
  t.ok(await eventually(async () => !(await accepts(config.gatewayPort))), 'new connections are refused once the listener closed');
  t.equal(cli.child.exitCode, null, 'still running while requests are in flight');
  for (const response of held) response.end('slow done');
  const responses = await Promise.all(inFlight);
  t.same(
    responses.map((r) => [r.status, r.body]),
    responses.map(() => [200, 'slow done']),
    'every in-flight request completed',
  );
  t.equal(await exitWithin(cli, 20_000), 0, 'exit 0 once the last request ended');
  t.ok(Date.now() - signalledAt < 30_000, `exited after ${Date.now() - signalledAt} ms, before the 30 s deadline`);
});

t.test('a request still running at the drain deadline is cut and the process still exits', async (t) => {
  // Never answered: only the drain deadline ends this request.
  const stuck = await startUpstream(() => undefined);
  t.teardown(() => stuck.close());
  const config = await ports(stuck.port, '1s');
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = await runGateway(t, dir.file, config.adminPort);

  const outcome = request(`http://127.0.0.1:${config.gatewayPort}/stuck`, { timeoutMs: 60_000 }).then(
    (response) => `status ${response.status}`,
    (error: Error) => `error ${error.message}`,
  );
  t.ok(await eventually(() => stuck.received.length === 1), 'the request reached the upstream');
  const signalledAt = Date.now();
  cli.child.kill('SIGTERM');
  t.equal(await exitWithin(cli, 20_000), 0, 'exit 0 despite the stuck request');
  const elapsed = Date.now() - signalledAt;
  t.ok(elapsed >= 900, `exited ${elapsed} ms after SIGTERM, not before the 1 s deadline`);
  t.notMatch(await outcome, /^status 200/, 'the stuck request did not complete');
});

t.test('SIGTERM while the gateway is still starting: exit 0 and nothing left listening', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const config = await ports(upstream.port);
  const dir = await configDir(ingressYaml(config));
  t.teardown(() => dir.remove());
  const cli = spawnCli(['run', '-c', dir.file]);
  t.teardown(() => cli.kill());
  // The first log line is written while start() is still opening the listeners and the admin port.
  t.ok(await eventually(() => cli.stdout().length > 0, 30_000), 'the gateway began starting');
  cli.child.kill('SIGTERM');
  // With worker threads (Node >= 22.12 on a multi-core machine) each worker loads its modules and builds its snapshot from the main thread's compile before it can drain: on a loaded machine that can take tens of seconds.
  t.equal(await exitWithin(cli, 60_000), 0, 'exit 0');
  t.equal(await accepts(config.adminPort), false, 'admin port closed');
  t.equal(await accepts(config.gatewayPort), false, 'gateway port closed');
});
