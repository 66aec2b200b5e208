/**
 * A private, throw-away `redis-server` for integration tests: its own free port on 127.0.0.1, its own
 * temp dir, no persistence. `stop()` then `start()` restarts it on the SAME port, so clients configured
 * with `url` see a real outage and a real recovery. Never uses the machine's 6379 (test ports start at 10000).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const REDIS_SERVER_BINARY = '/usr/bin/redis-server';
const START_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 5000;

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** (Re)starts the server on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /**
   * Stops the server (SIGTERM, SIGKILL after a deadline; or at once with `'SIGKILL'`, a crash);
   * resolves once the process exited.
   */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops the server and removes its temp dir. */
  dispose(): Promise<void>;
}

function waitUntilReady(child: ChildProcess, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => fail(new Error(`redis-server on port ${port} not ready after ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) finish();
    };
    const onExit = (code: number | null): void => fail(new Error(`redis-server exited with ${String(code)} before ready:\n${output}`));
    function cleanup(): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    }
    function finish(): void {
      cleanup();
      child.stdout?.resume();
      resolve();
    }
    function fail(error: Error): void {
      cleanup();
      child.kill('SIGKILL');
      reject(error);
    }
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

export interface PrivateRedisOptions {
  /** Keep data across a restart, even a SIGKILL: an append-only file fsynced on every write. */
  readonly persistent?: boolean;
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;

  async function start(): Promise<void> {
    if (child !== null) return;
    const spawned = spawn(
      REDIS_SERVER_BINARY,
      [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no',
        ...(options.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    child = spawned;
    spawned.once('exit', () => {
      if (child === spawned) child = null;
    });
    await waitUntilReady(spawned, port);
  }

  async function stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const running = child;
    if (running === null || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const killer = setTimeout(() => running.kill('SIGKILL'), STOP_TIMEOUT_MS);
      running.once('exit', () => {
        clearTimeout(killer);
        resolve();
      });
      running.kill(signal);
    });
    child = null;
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    async dispose() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
