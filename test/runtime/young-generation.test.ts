/**
 * The idle give-back of the young generation, on a real V8 heap: a child process (its own heap, so
 * this test's collections and flags stay out of the runner) grows its new space, keeps its event loop
 * busy, then idles. Node.js 24's V8 also shrinks an idle new space by itself, later; the new space
 * coming back within the deadline is the watch's doing on Node.js 20, whose V8 does not.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { shouldGiveBack } from '../../gateway/runtime/young-generation.js';

const MB = 1_048_576;

t.test('a scavenge is called for only by an idle interval with the new space grown past twice the size V8 starts it at', async (t) => {
  const cases: [utilization: number, newSpaceBytes: number, expected: boolean][] = [
    [0.001, 32 * MB, true],
    [0.009, 2 * MB + 1, true],
    [0.01, 32 * MB, false],
    [0.5, 32 * MB, false],
    [0.001, 2 * MB, false],
    [0, 1 * MB, false],
  ];
  for (const [utilization, newSpaceBytes, expected] of cases) {
    t.equal(shouldGiveBack(utilization, newSpaceBytes), expected, `utilization ${utilization}, new space ${newSpaceBytes} bytes`);
  }
});

const CHILD = `
import { getHeapSpaceStatistics } from 'node:v8';
const { giveBackWhenIdle } = await import(process.argv[1]);
const newSpace = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size;
const start = newSpace();
const watch = giveBackWhenIdle(100);
// Survivors across scavenges make V8 grow the new space, as a proxy's requests in flight do.
let kept = [];
const allocateUntil = Date.now() + 1_500;
while (Date.now() < allocateUntil) {
  for (let i = 0; i < 1_000; i++) kept.push({ index: i, label: 'request ' + i });
  if (kept.length > 200_000) kept = kept.slice(100_000);
}
kept = null;
const grown = newSpace();
// Busy without allocating: a loaded thread is never collected by the watch, however grown.
const busyUntil = Date.now() + 1_000;
await new Promise((resolve) => {
  const spin = () => { const until = Date.now() + 5; while (Date.now() < until); if (Date.now() < busyUntil) setImmediate(spin); else resolve(); };
  spin();
});
const afterBusy = watch.giveBacks;
const deadline = Date.now() + 20_000;
while (newSpace() > 2 * start && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
watch.stop();
console.log(JSON.stringify({ start, grown, afterBusy, giveBacks: watch.giveBacks, idle: newSpace() }));
`;

t.test('a thread that idles with a grown new space gives it back; a busy one is left alone', async (t) => {
  const module = new URL('../../gateway/runtime/young-generation.js', import.meta.url).href;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', CHILD, module], { timeout: 60_000 });
  const result = JSON.parse(stdout) as { start: number; grown: number; afterBusy: number; giveBacks: number; idle: number };
  t.ok(result.grown > 2 * result.start, `the load grew the new space (${result.start} → ${result.grown} bytes)`);
  t.equal(result.afterBusy, 0, 'no scavenge while the event loop was busy');
  t.ok(result.giveBacks >= 1, `the watch scavenged once idle (${result.giveBacks} times)`);
  t.ok(result.idle <= 2 * result.start, `the idle new space is back near its size at start (${result.idle} bytes)`);
});
