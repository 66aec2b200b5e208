/**
 * One Dapr pub/sub throughput run (dapr-bench.ts) with either publisher, and where the CPUs went over it.
 *
 * - `wrk`: wrk (`-t1`, 64 connections, bench/dapr-publish.lua) publishes on sidecar A, each event with its
 *   own id; the lean app (dapr-app.ts) takes sidecar B's deliveries. The load generator of the HTTP
 *   targets, so that the publisher does not eat the CPU the sidecars are measured on.
 * - `node`: the original app (dapr-client.ts): one node process publishing through an undici Pool of 64
 *   connections and receiving the deliveries on node:http.
 *
 * Either way the app prints `ready` once a probe made the whole trip; every process's CPU is read then
 * and again when the app says every event arrived (dapr-delivery.ts's window protocol), so all of them
 * are measured over the same window; wrk's CPU is its own whole life (it starts in the window and ends
 * just after it), read by its script from /proc/self/stat. A run that lost an event, or whose publisher
 * did not get a 204 for each, throws: the bench stops with the ids that are missing.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { accountWindow, takeSnapshot } from './cpu-accounting.js';
import type { CpuAccount, NamedProcess } from './cpu-accounting.js';
import { DELIVERED_LINE, READY_LINE } from './dapr-delivery.js';
import type { ThroughputReport } from './dapr-delivery.js';
import { clockTicksPerSecond } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, pinnedCommand } from './processes.js';
import type { Pinning } from './processes.js';

export type DaprPublisher = 'wrk' | 'node';
export const DAPR_PUBLISHERS: readonly DaprPublisher[] = ['wrk', 'node'];

/** The publishes in flight with either publisher: the undici Pool's connections, wrk's `-c`. */
export const IN_FLIGHT = 64;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));
const PUBLISH_SCRIPT = fileURLToPath(new URL('../../bench/dapr-publish.lua', import.meta.url));
/** How long the app waits for the last event, and without any new one, before it reports what is missing. */
const DEADLINE_SECONDS = 120;
const STALL_SECONDS = 10;
/** After the last delivery, how long wrk may still take to read its last answers. */
const PUBLISHER_GRACE_MS = 10_000;

export const SIDECAR_A_PART = 'sidecar A (CPU 0)';
export const SIDECAR_B_PART = 'sidecar B (CPU 1)';
/**
 * Where the app runs. The node app publishes and subscribes in one process: CPU 0, the client side. The
 * lean app only subscribes: by default on CPU 1 with sidecar B, as the mesh targets put the upstream with
 * the server-side sidecar (`DAPR_LEAN_APP_CPU=0` puts it on CPU 0, where the node app is, to compare the
 * publishers alone).
 */
export function appCpu(publisher: DaprPublisher, leanAppCpu: number): number {
  return publisher === 'wrk' ? leanAppCpu : LOAD_GENERATOR_CPU;
}

export function appPart(publisher: DaprPublisher, leanAppCpu: number): string {
  return `app: ${publisher === 'wrk' ? 'lean subscriber' : 'node publisher + subscriber'} (CPU ${appCpu(publisher, leanAppCpu)})`;
}
export const WRK_PART = 'wrk publisher (CPU 0)';
export const DRIVER_PART = 'bench driver (node run.js)';

export interface RunTarget {
  readonly appPort: number;
  readonly sidecarPort: number;
  readonly topic: string;
  /** Sidecars, broker: read over the window with the app. */
  readonly processes: readonly NamedProcess[];
  /** The lean app's CPU (appCpu). */
  readonly leanAppCpu: number;
}

export interface MeasuredRun {
  readonly publisher: DaprPublisher;
  readonly report: ThroughputReport;
  /** Sidecar A's and B's CPU per message over the window; null without /proc. */
  readonly publisherCpu: number | null;
  readonly subscriberCpu: number | null;
  readonly account: CpuAccount | null;
}

/** wrk's last line (dapr-publish.lua's done()). */
export interface WrkPublishReport {
  readonly sent: number;
  readonly answered: number;
  readonly failed: number;
  readonly firstFailure: string;
  readonly socketErrors: number;
  readonly cpuTicks: number;
}

export function parseWrkPublishReport(output: string): WrkPublishReport {
  const line = output
    .split('\n')
    .reverse()
    .find((candidate) => candidate.startsWith('{"sent":'));
  if (line === undefined) throw new Error(`wrk printed no report (bench/dapr-publish.lua):\n${output}`);
  return JSON.parse(line) as WrkPublishReport;
}

/** Why a run does not count, or null: every event published once with a 204, and delivered. */
export function runFailure(report: ThroughputReport, published: WrkPublishReport | null): string | null {
  const problems: string[] = [];
  if (report.lost > 0) problems.push(`${report.lost} of ${report.messages} events lost (first missing ids ${report.missing.join(', ')})`);
  if (report.unexpected > 0) problems.push(`${report.unexpected} events with ids outside 1…${report.messages}`);
  if (published !== null) {
    if (published.sent !== report.messages || published.answered !== report.messages) problems.push(`wrk sent ${published.sent} and got ${published.answered} answers for ${report.messages} events`);
    if (published.failed > 0) problems.push(`${published.failed} publishes not answered 204 (first: ${published.firstFailure})`);
    if (published.socketErrors > 0) problems.push(`${published.socketErrors} socket errors at wrk`);
  }
  return problems.length === 0 ? null : problems.join('; ');
}

/** A child whose stdout is read line by line (the window protocol), and whose stdin answers it. */
class WindowedChild {
  private readonly lines: string[] = [];
  private waiting: (() => void) | null = null;
  private readonly closed: Promise<number | null>;
  private readonly stderr: string[] = [];

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.waiting?.();
    });
    child.stderr.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString()));
    this.closed = new Promise((resolve) => child.once('close', (code) => resolve(code)));
    void this.closed.then(() => this.waiting?.());
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Resolves when `expected` arrives on stdout; rejects if the child ends first. */
  async line(expected: string): Promise<void> {
    let exited = false;
    void this.closed.then(() => (exited = true));
    for (;;) {
      const index = this.lines.indexOf(expected);
      if (index !== -1) {
        this.lines.splice(0, index + 1);
        return;
      }
      if (exited || this.child.exitCode !== null) throw new Error(`the app ended before "${expected}":\n${this.stderr.join('')}${this.lines.join('\n')}`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  answer(): void {
    this.child.stdin.write('\n');
  }

  /** The last stdout line, once the child exited 0. */
  async lastLine(): Promise<string> {
    const code = await this.closed;
    const last = this.lines.at(-1);
    if (code !== 0 || last === undefined) throw new Error(`the app failed (${code}):\n${this.stderr.join('')}${this.lines.join('\n')}`);
    return last;
  }
}

function startPinned(pinning: Pinning, cpu: number, command: string, args: readonly string[], signal: AbortSignal): ChildProcessWithoutNullStreams {
  const [file, argv] = pinnedCommand(pinning, cpu, command, args);
  return spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'], signal, killSignal: 'SIGKILL' });
}

export interface RunningWrk {
  readonly done: Promise<WrkPublishReport>;
  /** Ends wrk now (it then prints its report). */
  interrupt(): void;
}

export function startWrk(pinning: Pinning, target: RunTarget, runId: string, messages: number, signal: AbortSignal): RunningWrk {
  const url = `http://127.0.0.1:${target.sidecarPort}/v1.0/publish/events/${target.topic}`;
  const args = ['-t1', `-c${IN_FLIGHT}`, `-d${DEADLINE_SECONDS}s`, `--timeout`, `${DEADLINE_SECONDS}s`, '-s', PUBLISH_SCRIPT, url, '--', runId, '1', String(messages)];
  const child = startPinned(pinning, LOAD_GENERATOR_CPU, 'wrk', args, signal);
  const interrupt = (): void => void child.kill('SIGINT');
  let output = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    output += `${line}\n`;
    // wrk's main thread sleeps through -d whatever its threads do; SIGINT ends the sleep.
    if (line === 'answered') interrupt();
  });
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const done = new Promise<WrkPublishReport>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => {
      try {
        resolve(parseWrkPublishReport(output));
      } catch (error) {
        reject(error as Error);
      }
    });
  });
  return { done, interrupt };
}

let runs = 0;

export async function measuredRun(pinning: Pinning, publisher: DaprPublisher, target: RunTarget, messages: number, signal: AbortSignal): Promise<MeasuredRun> {
  if (messages < IN_FLIGHT) throw new Error(`DAPR_MESSAGES must be at least ${IN_FLIGHT} (one per connection)`);
  const runId = `${process.pid}-${Date.now()}-${++runs}`;
  const common = ['--app-port', String(target.appPort), '--sidecar-port', String(target.sidecarPort), '--topic', target.topic, '--run', runId, '--messages', String(messages)];
  const window = ['--deadline-seconds', String(DEADLINE_SECONDS), '--stall-seconds', String(STALL_SECONDS)];
  const script = publisher === 'wrk' ? [join(BENCH_DIST, 'dapr-app.js'), ...common, ...window] : [join(BENCH_DIST, 'dapr-client.js'), '--mode', 'pubsub', ...common, ...window, '--in-flight', String(IN_FLIGHT)];
  const app = new WindowedChild(startPinned(pinning, appCpu(publisher, target.leanAppCpu), process.execPath, script, signal));
  const processes = [...target.processes, { label: appPart(publisher, target.leanAppCpu), pid: app.pid }];
  await app.line(READY_LINE);
  const driverBefore = process.cpuUsage();
  const before = takeSnapshot(processes);
  app.answer();
  const wrk = publisher === 'wrk' ? startWrk(pinning, target, runId, messages, signal) : null;
  await app.line(DELIVERED_LINE);
  const after = takeSnapshot(processes);
  const driver = process.cpuUsage(driverBefore);
  app.answer();
  const report = JSON.parse(await app.lastLine()) as ThroughputReport;
  let published: WrkPublishReport | null = null;
  if (wrk !== null) {
    const grace = setTimeout(wrk.interrupt, PUBLISHER_GRACE_MS);
    published = await wrk.done.finally(() => clearTimeout(grace));
  }
  const failure = runFailure(report, published);
  if (failure !== null) throw new Error(`${target.topic} (${publisher} publisher): ${failure}`);
  const extra = new Map([[DRIVER_PART, driver.user + driver.system]]);
  if (published !== null && published.cpuTicks >= 0) extra.set(WRK_PART, (published.cpuTicks * 1_000_000) / clockTicksPerSecond);
  const account = accountWindow(before, after, messages, extra);
  const part = (label: string): number | null => account?.parts.find((candidate) => candidate.label === label)?.usPerMessage ?? null;
  return { publisher, report, publisherCpu: part(SIDECAR_A_PART), subscriberCpu: part(SIDECAR_B_PART), account };
}

/**
 * `DAPR_PUBLISHERS` (comma-separated, in order; the first is the one the bars judge): unset is `wrk`, or
 * `node` where wrk is not installed (as the HTTP targets fall back to autocannon).
 */
export function parsePublishers(text: string | undefined, wrkInstalled: boolean): readonly DaprPublisher[] {
  if (text === undefined || text.trim() === '') return [wrkInstalled ? 'wrk' : 'node'];
  const names = text.split(',').map((name) => name.trim());
  const publishers = names.filter((name): name is DaprPublisher => (DAPR_PUBLISHERS as readonly string[]).includes(name));
  if (publishers.length !== names.length || new Set(publishers).size !== publishers.length) throw new Error(`DAPR_PUBLISHERS="${text}": a list of distinct ${DAPR_PUBLISHERS.join(', ')}`);
  if (publishers.includes('wrk') && !wrkInstalled) throw new Error('DAPR_PUBLISHERS names wrk, which is not installed (apt-get install wrk)');
  return publishers;
}
