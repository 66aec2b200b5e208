/**
 * What a start and a reload of the 10 000-rule config cost with `--concurrency N` (1 and 2 workers),
 * this build against another (`BENCH_BASELINE_CLI`), run one after the other in alternating order
 * (`baseline, this` then `this, baseline`, …) so that the machine's load hits both alike. CPU is
 * utime + stime of the whole proxy process (main thread and workers) from /proc:
 * - start: spawn → its `meshgate ready` log line;
 * - reload: a comment appended to the config, then `POST /reload` → its answer (the changed config);
 * - watch: the file watch's own reload of the same change, which finds it already running
 *   ("unchanged"): from that answer until the process is idle again.
 *
 *   BENCH_BASELINE_CLI=/path/to/old/dist/gateway/cli/main.js node dist/bench/worker-reload-cpu.js [rounds] [reloads] [workers,…]
 *
 * Not part of `npm run bench`: it takes minutes and measures the control plane, not requests.
 */
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { writeIngressConfig } from './config.js';
import { median } from './median.js';
import { LARGE_TABLE } from './scale.js';
import { BASELINE_CLI, MESHGATE_CLI } from './targets.js';
import { freePort } from '../test/helpers/ports.js';

const DEFAULT_WORKER_COUNTS = '1,2';
/** How long a process must use no CPU for its reload work to count as over (the watch's debounce is 150 ms). */
const IDLE_MS = 1_000;
const TICK_MS = 10;

interface Sample {
  readonly build: 'baseline' | 'this';
  readonly workers: number;
  readonly load: number;
  readonly startCpuMs: number;
  readonly startWallMs: number;
  readonly reloadCpuMs: number[];
  readonly reloadWallMs: number[];
  readonly watchCpuMs: number[];
}

/** utime + stime of the process, all its threads, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function untilIdle(pid: number): Promise<number> {
  let last = await cpuMs(pid);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const now = await cpuMs(pid);
    if (now - last <= TICK_MS) return now;
    last = now;
  }
}

function post(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function once(cli: string, build: Sample['build'], workers: number, reloads: number): Promise<Sample> {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-worker-reload-'));
  try {
    const [listenerPort, adminPort] = [await freePort(), await freePort()];
    const configPath = await writeIngressConfig({ directory, upstreamPorts: [1, 2], listenerPort, adminPort, tls: null, table: LARGE_TABLE });
    const load = loadavg()[0] as number;
    const started = performance.now();
    const child = spawn(process.execPath, [cli, 'run', '-c', configPath, '--concurrency', String(workers), '--status-address=', '--metrics-address='], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = child.pid as number;
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${build} exited with ${code} before it was ready`)));
      lines.on('line', (line) => {
        if (line.includes('"meshgate ready"')) resolve();
      });
    });
    const startCpuMs = await cpuMs(pid);
    const startWallMs = performance.now() - started;
    await untilIdle(pid);
    const sample: Sample = { build, workers, load, startCpuMs, startWallMs, reloadCpuMs: [], reloadWallMs: [], watchCpuMs: [] };
    for (let reload = 0; reload < reloads; reload++) {
      const before = await cpuMs(pid);
      const wallStart = performance.now();
      await appendFile(configPath, `# reload ${reload}\n`);
      const outcome = JSON.parse(await post(adminPort, '/reload')) as { message?: string };
      if (outcome.message !== 'applied') throw new Error(`${build}: reload ${reload} answered ${JSON.stringify(outcome)}`);
      sample.reloadWallMs.push(performance.now() - wallStart);
      const answered = await cpuMs(pid);
      sample.reloadCpuMs.push(answered - before);
      sample.watchCpuMs.push((await untilIdle(pid)) - answered);
    }
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    return sample;
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

function range(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${Math.round(median(sorted))} (${Math.round(sorted[0] ?? 0)}–${Math.round(sorted[sorted.length - 1] ?? 0)})`;
}

async function main(): Promise<void> {
  if (BASELINE_CLI === undefined) throw new Error('BENCH_BASELINE_CLI: the other build to compare with');
  const rounds = Number(process.argv[2] ?? 6);
  const reloads = Number(process.argv[3] ?? 3);
  const workerCounts = (process.argv[4] ?? DEFAULT_WORKER_COUNTS).split(',').map(Number);
  const samples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const workers of workerCounts) {
      const order: [Sample['build'], string][] = [
        ['baseline', BASELINE_CLI],
        ['this', MESHGATE_CLI],
      ];
      if (round % 2 === 1) order.reverse();
      for (const [build, cli] of order) {
        const sample = await once(cli, build, workers, reloads);
        samples.push(sample);
        process.stderr.write(`${JSON.stringify(sample)}\n`);
      }
    }
  }
  console.log('| workers | build | start CPU ms | start wall ms | reload CPU ms | reload wall ms | watch\'s unchanged reload CPU ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const workers of workerCounts) {
    for (const build of ['baseline', 'this'] as const) {
      const mine = samples.filter((sample) => sample.workers === workers && sample.build === build);
      console.log(
        `| ${workers} | ${build} | ${range(mine.map((s) => s.startCpuMs))} | ${range(mine.map((s) => s.startWallMs))} | ${range(mine.flatMap((s) => s.reloadCpuMs))} | ${range(mine.flatMap((s) => s.reloadWallMs))} | ${range(mine.flatMap((s) => s.watchCpuMs))} |`,
      );
    }
  }
  const loads = samples.map((sample) => sample.load);
  console.log(`load average (1 min) at the processes' starts: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`);
}

await main();
