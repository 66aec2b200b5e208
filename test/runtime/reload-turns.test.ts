/**
 * A reload of a large config runs beside the traffic it must not stall (steps.ts): every stage of the
 * read and the compile gives the event loop back at least every few milliseconds of work. Measured as
 * requests in flight see it: a chain of immediates (what an I/O callback waits behind) records the main
 * thread's CPU time between two of its turns while the 10 000-rule config reloads. Turns during which the
 * garbage collector ran are left out: a pause of the collector is not a stage that forgot to yield.
 */
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import t from 'tap';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import { writeIngressConfig } from '../../bench/config.js';
import { LARGE_TABLE } from '../../bench/scale.js';

/**
 * Generous: a slice is 0.1 ms, the longest indivisible step (one document, one virtual host) well under
 * that; before the stages were sliced, single stretches of this reload took 10-50 ms of CPU.
 */
const LONGEST_TURN_MS = 20;

interface Turn {
  readonly start: number;
  readonly end: number;
  readonly cpuMs: number;
}

const loopThreadWorkMs = (turn: Turn): number => Math.min(turn.cpuMs, turn.end - turn.start);

/**
 * The CPU time of this thread alone, in ms (Linux's per-thread schedstat): the process's
 * (`process.cpuUsage`) also counts V8's compiler and collector threads, which run beside a turn, not in
 * it; on a loaded machine they once took a turn's count past the bound.
 */
const MAIN_THREAD_SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const mainThreadCpuMs = (): number => Number(readFileSync(MAIN_THREAD_SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6;

/** The turns between two runs of an immediate chain, until `done` settles. */
async function turnsDuring(done: Promise<unknown>): Promise<Turn[]> {
  const turns: Turn[] = [];
  let finished = false;
  void done.finally(() => (finished = true));
  let [last, lastCpu] = [performance.now(), mainThreadCpuMs()];
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const [now, cpu] = [performance.now(), mainThreadCpuMs()];
      turns.push({ start: last, end: now, cpuMs: cpu - lastCpu });
      [last, lastCpu] = [now, cpu];
      if (finished) resolve();
      else setImmediate(tick);
    };
    setImmediate(tick);
  });
  await done;
  return turns;
}

t.test('a reload of the 10 000-rule config gives the event loop back every few ms of work', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-reload-turns-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const path = await writeIngressConfig({ directory, upstreamPorts: [1, 2], listenerPort: 3, adminPort: 4, tls: null, table: LARGE_TABLE });
  const options = { mode: 'ingress' as const, plugins: [] };
  // The start: JIT warm-up and first-time caches are not what a reload costs.
  t.ok((await compileConfig(path, options)).ok, 'the config compiles');

  const collections: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) collections.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  t.teardown(() => observer.disconnect());

  // As a reload after an edit: the content hash changes, every document's text is as before.
  await appendFile(path, '# edited\n');
  const reload = compileConfig(path, options);
  const turns = await turnsDuring(reload);
  t.ok((await reload).ok, 'the reload compiles');
  await new Promise((resolve) => setImmediate(resolve));

  const collected = (turn: Turn): boolean => collections.some((gc) => gc.start <= turn.end && gc.end >= turn.start);
  const measured = turns.filter((turn) => !collected(turn));
  t.ok(measured.length >= 100, `the reload took many turns (${measured.length} without a collection, of ${turns.length})`);
  const longest = Math.max(...measured.map(loopThreadWorkMs));
  t.ok(longest < LONGEST_TURN_MS, `the longest turn took ${longest.toFixed(1)} ms of work (at most ${LONGEST_TURN_MS})`);
});
