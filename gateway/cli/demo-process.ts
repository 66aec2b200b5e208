/**
 * The demo's supervision of its proxy processes: a child is ready only when it is alive and the admin
 * port answering /ready is its own (a stale demo still holding the port answers too), a port another
 * process holds stops the demo with one line naming it, and children exit with the demo: each gets an
 * IPC channel, which `meshgate run` treats as "exit when my parent does" (the channel closes however
 * the parent dies, SIGKILL included).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const READY_DEADLINE_MS = 30_000;
const POLL_MS = 100;

export interface ProxyLaunch {
  readonly name: string;
  /** `meshgate run` arguments after `run`. */
  readonly args: readonly string[];
  /** Admin `host:port` given to the child. */
  readonly admin: string;
  readonly logFile: string;
}

/** A port problem a user can act on, as one line. */
export class PortInUseError extends Error {}

/** Resolves when `host:port` can be bound now; a PortInUseError when another process holds it. */
export function checkPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(`port ${port} on ${host} is already in use (another demo still running?)`) : error),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

export function spawnProxy(launch: ProxyLaunch): ChildProcess {
  const out = createWriteStream(launch.logFile);
  const child = spawn(process.execPath, [MAIN, 'run', ...launch.args, '--admin-address', launch.admin], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  return child;
}

/** The port of an EADDRINUSE a child logged before exiting, so the demo can name it. */
async function portInUseFromLog(logFile: string): Promise<string | undefined> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  return /EADDRINUSE: address already in use [^\s"]*:(\d+)/.exec(log)?.[1];
}

async function adminAnswer(admin: string): Promise<{ pid: number; ready: boolean } | undefined> {
  try {
    const info = await fetch(`http://${admin}/server_info`, { signal: AbortSignal.timeout(2000) });
    const { pid } = (await info.json()) as { pid?: unknown };
    const ready = await fetch(`http://${admin}/ready`, { signal: AbortSignal.timeout(2000) });
    await ready.body?.cancel();
    return { pid: typeof pid === 'number' ? pid : -1, ready: ready.status === 200 };
  } catch {
    return undefined;
  }
}

/**
 * Waits until `child` is alive and its own admin server answers /ready 200. Rejects, with one line a
 * user can act on, when the child exits, another process answers on its admin port, or the deadline passes.
 */
export async function waitProxyReady(launch: ProxyLaunch, child: ChildProcess, deadlineMs = READY_DEADLINE_MS): Promise<void> {
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  const deadline = Date.now() + deadlineMs;
  let stalePid: number | undefined;
  while (Date.now() < deadline) {
    const answer = await Promise.race([adminAnswer(launch.admin), exited.then(() => 'exited' as const)]);
    if (answer === 'exited') {
      const port = await portInUseFromLog(launch.logFile);
      if (port !== undefined) throw new PortInUseError(`port ${port} is already in use, so ${launch.name} could not start (another demo still running?)`);
      if (stalePid !== undefined) throw new PortInUseError(`${launch.admin} is held by another process (pid ${stalePid}), so ${launch.name} could not start (another demo still running?)`);
      throw new Error(`${launch.name} exited with code ${String(child.exitCode ?? child.signalCode)}; see ${launch.logFile}`);
    }
    if (answer !== undefined && answer.pid !== child.pid) stalePid = answer.pid;
    if (answer !== undefined && answer.pid === child.pid && answer.ready) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`${launch.name} did not become ready within ${deadlineMs / 1000} s; see ${launch.logFile}`);
}
