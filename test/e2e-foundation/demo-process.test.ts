/**
 * How `meshgate demo` supervises its proxies (gateway/cli/demo-process.ts): ready means the child is
 * alive and the admin port answering is its own; a port held by another process is one line naming
 * the port; and a demo killed with SIGKILL leaves no proxy behind.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkPortFree, PortInUseError, spawnProxy, waitProxyReady } from '../../gateway/cli/demo-process.js';
import { configDir, freePort } from '../helpers/gateway.js';
import { eventually, ingressYaml } from './fixtures.js';

const PARENT = fileURLToPath(new URL('./demo-parent.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** An admin port held by a process that is not the demo's child, answering as a ready meshgate would. */
async function staleAdmin(port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(request.url === '/server_info' ? JSON.stringify({ pid: 1 }) : JSON.stringify({ ready: true }));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

const logs = await mkdtemp(join(tmpdir(), 'meshgate-demo-'));
t.teardown(() => rm(logs, { recursive: true, force: true }));

t.test('a ready answer from a stale process on the admin port is not readiness: one line names the port', async (t) => {
  const adminPort = await freePort();
  const stale = await staleAdmin(adminPort);
  t.teardown(() => new Promise((resolve) => stale.close(resolve)));
  const dir = await configDir(ingressYaml({ adminPort, gatewayPort: await freePort(), upstreamPort: 9 }));
  t.teardown(() => dir.remove());
  const launch = { name: 'ingress', args: ['-c', dir.file], admin: `127.0.0.1:${adminPort}`, logFile: join(logs, 'stale.log') };
  const child = spawnProxy(launch);
  t.teardown(() => void child.kill('SIGKILL'));
  const error = await waitProxyReady(launch, child).then(
    () => null,
    (reason: unknown) => reason,
  );
  t.type(error, PortInUseError);
  t.equal((error as Error).message, `port ${adminPort} is already in use, so ingress could not start (another demo still running?)`);
  await t.rejects(checkPortFree('127.0.0.1', adminPort), new PortInUseError(`port ${adminPort} on 127.0.0.1 is already in use (another demo still running?)`));
});

t.test('the child that answers is ready; a demo killed with SIGKILL takes its proxies with it', async (t) => {
  const adminPort = await freePort();
  const dir = await configDir(ingressYaml({ adminPort, gatewayPort: await freePort(), upstreamPort: 9 }));
  t.teardown(() => dir.remove());
  const parent = spawn(process.execPath, [PARENT, dir.file, `127.0.0.1:${adminPort}`, join(logs, 'orphan.log')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  t.teardown(() => void parent.kill('SIGKILL'));
  t.ok(await eventually(() => out.includes('\n'), 30_000), 'the proxy became ready under the stand-in demo');
  const childPid = Number(out.trim());
  t.ok(Number.isInteger(childPid) && alive(childPid), `proxy pid ${childPid} is running`);
  t.teardown(() => {
    if (alive(childPid)) process.kill(childPid, 'SIGKILL');
  });
  parent.kill('SIGKILL');
  t.ok(await eventually(() => !alive(childPid), 30_000), 'the proxy exits once its parent is gone');
});
