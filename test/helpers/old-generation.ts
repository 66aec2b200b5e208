/**
 * What a piece of code leaves in V8's old generation, turn after turn, measured in a child process (a
 * heap of its own: the test runner churns a little of its own). A long-lived Set or Map that gets an
 * entry added and deleted on every turn is the case this catches: V8 reallocates a rehashed table in
 * the generation the old one lives in, so that garbage waits for a full collection.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const CHILD = `
import { getHeapSpaceStatistics } from 'node:v8';
const subject = await import(process.argv[1]);
const turns = Number(process.argv[2]);
const act = new Function('subject', 'context', process.argv[4]);
const context = new Function('subject', process.argv[3])(subject);
const oldSpaceUsed = () => getHeapSpaceStatistics().find((space) => space.space_name === 'old_space').space_used_size;
const growthPerTurn = async (acting) => {
  gc();
  const before = oldSpaceUsed();
  for (let turn = 0; turn < turns; turn++) {
    if (acting) await act(subject, context);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return (oldSpaceUsed() - before) / turns;
};
const baseline = await growthPerTurn(false);
const acting = await growthPerTurn(true);
console.log(JSON.stringify({ baseline, acting }));
process.exit(0);
`;

export interface OldGenerationGrowth {
  /** Old-space bytes per turn with nothing done. */
  readonly baseline: number;
  /** Old-space bytes per turn with the action run once a turn. */
  readonly acting: number;
}

/**
 * `setup` is the body of a function of `subject` (the module at `moduleUrl`) whose result is the
 * `context`; `action` the body of a function of `subject` and `context`, run (and awaited) once a turn.
 */
export async function oldGenerationGrowthPerTurn(moduleUrl: string, setup: string, action: string, turns = 20_000): Promise<OldGenerationGrowth> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD, moduleUrl, String(turns), setup, action], { timeout: 60_000 });
  return JSON.parse(stdout) as OldGenerationGrowth;
}
