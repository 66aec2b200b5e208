/**
 * The load generator: wrk (closed loop, one thread, keep-alive; what bench/README.md#method describes) and,
 * only when wrk is absent, autocannon from devDependencies. Both run as a child pinned to the
 * load-generator CPU and report the same LoadResult.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { LOAD_GENERATOR_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { Pinning } from './processes.js';

export interface LoadSpec {
  readonly url: string;
  /** Host header sent with every request (routing on the gateway); null = the URL's authority. */
  readonly host: string | null;
  /** Extra request headers (e.g. a bearer token), sent with every request. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly seconds: number;
  /** Aborting kills the load generator (the driver aborts on SIGINT/SIGTERM). */
  readonly signal: AbortSignal;
}

export interface LoadResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly non2xx: number;
  readonly socketErrors: number;
}

export interface LoadGenerator {
  readonly name: string;
  /** Printed at the start of the run when the generator is not the preferred one. */
  readonly note: string | null;
  /** The finest latency step the generator reports; a latency bar needs microseconds. */
  readonly latencyResolutionUs: number;
  run(spec: LoadSpec): Promise<LoadResult>;
}

/** Beyond the run itself: start-up, connection set-up and the final report. */
const RUN_SLACK_MS = 15_000;

/** Prints the 99.9th percentile, which `--latency` does not (the tail bars read it). */
const WRK_LATENCY_SCRIPT = fileURLToPath(new URL('../../bench/wrk-latency.lua', import.meta.url));

const LATENCY_UNIT_US: Readonly<Record<string, number>> = { us: 1, ms: 1_000, s: 1_000_000, m: 60_000_000 };

function microseconds(value: string, unit: string): number {
  const scale = LATENCY_UNIT_US[unit];
  if (scale === undefined) throw new Error(`unknown wrk latency unit "${unit}"`);
  return Number(value) * scale;
}

function wrkPercentile(output: string, percent: number): number {
  const match = new RegExp(`^\\s+${percent}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
  if (match === null) throw new Error(`wrk output has no ${percent}% latency line:\n${output}`);
  return microseconds(match[1] as string, match[2] as string);
}

function wrkTail(output: string): number {
  const match = /^p99\.9 latency: (\d+)us$/m.exec(output);
  if (match === null) throw new Error(`wrk output has no p99.9 line (bench/wrk-latency.lua):\n${output}`);
  return Number(match[1]);
}

function wrkCount(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  return match === null ? 0 : Number(match[1]);
}

/** Parses `wrk --latency -s bench/wrk-latency.lua` output (wrk 4.x). */
export function parseWrkOutput(output: string): LoadResult {
  const requests = /^\s+(\d+) requests in /m.exec(output);
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  if (requests === null || rate === null) throw new Error(`unrecognised wrk output:\n${output}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, count) => sum + Number(count), 0);
  return {
    requests: Number(requests[1]),
    requestsPerSecond: Number(rate[1]),
    p50Us: wrkPercentile(output, 50),
    p90Us: wrkPercentile(output, 90),
    p99Us: wrkPercentile(output, 99),
    p999Us: wrkTail(output),
    non2xx: wrkCount(output, /Non-2xx or 3xx responses: (\d+)/),
    socketErrors,
  };
}

function wrkGenerator(pinning: Pinning): LoadGenerator {
  return {
    name: 'wrk',
    note: null,
    latencyResolutionUs: 1,
    async run(spec) {
      const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, '--latency', '-s', WRK_LATENCY_SCRIPT];
      if (spec.host !== null) args.push('-H', `Host: ${spec.host}`);
      for (const [name, value] of Object.entries(spec.headers ?? {})) args.push('-H', `${name}: ${value}`);
      args.push(spec.url);
      const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, 'wrk', args);
      return parseWrkOutput(await runToCompletion(command, argv, spec.seconds * 1_000 + RUN_SLACK_MS, spec.signal));
    },
  };
}

function numberAt(value: unknown, ...path: string[]): number {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return 0;
    current = (current as Record<string, unknown>)[key];
  }
  return typeof current === 'number' ? current : 0;
}

function autocannonGenerator(pinning: Pinning): LoadGenerator {
  const cli = createRequire(import.meta.url).resolve('autocannon');
  return {
    name: 'autocannon',
    note: 'wrk not found: using autocannon (a Node load generator; it needs more CPU than wrk and may itself be the bottleneck, and it reports latency in whole milliseconds, so the latency bars cannot be judged: apt-get install wrk)',
    latencyResolutionUs: 1_000,
    async run(spec) {
      const args = [cli, '--json', '-c', String(spec.connections), '-d', String(spec.seconds)];
      if (spec.host !== null) args.push('-H', `host=${spec.host}`);
      for (const [name, value] of Object.entries(spec.headers ?? {})) args.push('-H', `${name}=${value}`);
      args.push(spec.url);
      const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, process.execPath, args);
      // The HTTPS targets use a throwaway CA (wrk never verifies).
      const report: unknown = JSON.parse(await runToCompletion(command, argv, spec.seconds * 1_000 + RUN_SLACK_MS, spec.signal, { NODE_TLS_REJECT_UNAUTHORIZED: '0' }));
      const msToUs = 1_000;
      return {
        requests: numberAt(report, 'requests', 'total'),
        requestsPerSecond: numberAt(report, 'requests', 'average'),
        p50Us: numberAt(report, 'latency', 'p50') * msToUs,
        p90Us: numberAt(report, 'latency', 'p90') * msToUs,
        p99Us: numberAt(report, 'latency', 'p99') * msToUs,
        p999Us: numberAt(report, 'latency', 'p99_9') * msToUs,
        non2xx: numberAt(report, 'non2xx'),
        socketErrors: numberAt(report, 'errors') + numberAt(report, 'timeouts'),
      };
    },
  };
}

export function detectLoadGenerator(pinning: Pinning): LoadGenerator {
  const wrkMissing = spawnSync('wrk', ['-v'], { stdio: 'ignore' }).error !== undefined;
  return wrkMissing ? autocannonGenerator(pinning) : wrkGenerator(pinning);
}
