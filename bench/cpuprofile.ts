/**
 * Reads a `node --cpu-prof` profile and prints where the time went: self and inclusive time per
 * function and per module (a package under node_modules, a meshgate source folder, node's internals).
 *
 *   node dist/bench/cpuprofile.js FILE.cpuprofile [--top 40] [--per 20000] [--focus REGEX]
 *
 * `--per N` divides every figure by N (the messages or requests of the run) to give µs per unit;
 * `--focus REGEX` keeps only the samples with a frame whose `function (module)` label matches, so one
 * path's cost can be split further. Idle time is counted apart and left out of the percentages.
 * Inclusive time counts a function once per sample however deep it recurses.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code lives, short: `undici`, `gateway/dapr/pubsub`, `node:internal`, `(native)`. */
function moduleOf(url: string): string {
  if (url === '') return '(native)';
  const packaged = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packaged !== null) return packaged[1] as string;
  if (url.startsWith('node:')) return url.startsWith('node:internal') ? 'node:internal' : url;
  const own = /\/dist\/((?:gateway|plugins|bench|test)(?:\/[^/]+)?)\//.exec(url);
  if (own !== null) return own[1] as string;
  return url.replace(/^file:\/\//, '');
}

function frameLabel(frame: CallFrame): string {
  const file = frame.url === '' ? '' : ` ${moduleOf(frame.url)}/${frame.url.slice(frame.url.lastIndexOf('/') + 1)}:${frame.lineNumber + 1}`;
  return `${frame.functionName === '' ? '(anonymous)' : frame.functionName}${file}`;
}

const IDLE = new Set(['(idle)']);

interface ProfileSummary {
  readonly totalUs: number;
  readonly idleUs: number;
  readonly selfByFunction: Map<string, number>;
  readonly inclusiveByFunction: Map<string, number>;
  readonly selfByModule: Map<string, number>;
  readonly inclusiveByModule: Map<string, number>;
}

function summarize(profile: CpuProfile, focus: RegExp | null): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const stackCache = new Map<number, readonly ProfileNode[]>();
  const stackOf = (id: number): readonly ProfileNode[] => {
    let stack = stackCache.get(id);
    if (stack === undefined) {
      const up = parent.get(id);
      stack = [...(up === undefined ? [] : stackOf(up)), byId.get(id) as ProfileNode];
      stackCache.set(id, stack);
    }
    return stack;
  };
  const summary: ProfileSummary = {
    totalUs: 0,
    idleUs: 0,
    selfByFunction: new Map(),
    inclusiveByFunction: new Map(),
    selfByModule: new Map(),
    inclusiveByModule: new Map(),
  };
  const add = (map: Map<string, number>, key: string, us: number): void => {
    map.set(key, (map.get(key) ?? 0) + us);
  };
  let totalUs = 0;
  let idleUs = 0;
  profile.samples.forEach((id, index) => {
    // A sample's delta is the time since the previous one: it belongs to the frame sampled now.
    const us = profile.timeDeltas[index] ?? 0;
    const leaf = byId.get(id);
    if (leaf === undefined) return;
    if (IDLE.has(leaf.callFrame.functionName)) {
      idleUs += us;
      return;
    }
    const stack = stackOf(id);
    const labels = stack.map((node) => frameLabel(node.callFrame));
    if (focus !== null && !labels.some((label) => focus.test(label))) return;
    totalUs += us;
    add(summary.selfByFunction, frameLabel(leaf.callFrame), us);
    add(summary.selfByModule, moduleOf(leaf.callFrame.url), us);
    for (const label of new Set(labels)) add(summary.inclusiveByFunction, label, us);
    for (const module of new Set(stack.map((node) => moduleOf(node.callFrame.url)))) add(summary.inclusiveByModule, module, us);
  });
  return { ...summary, totalUs, idleUs };
}

function table(title: string, map: ReadonlyMap<string, number>, totalUs: number, top: number, per: number): string[] {
  const rows = [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const unit = per === 1 ? 'ms' : 'µs/unit';
  const scale = (us: number): string => (per === 1 ? (us / 1000).toFixed(1) : (us / per).toFixed(2));
  return [`\n${title} (${unit}, % of busy time)`, ...rows.map(([key, us]) => `${scale(us).padStart(10)} ${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${key}`)];
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '40' }, per: { type: 'string', default: '1' }, focus: { type: 'string' } },
  });
  const file = positionals[0];
  if (file === undefined) throw new Error('usage: node dist/bench/cpuprofile.js FILE.cpuprofile [--top N] [--per UNITS] [--focus REGEX]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const top = Number(values.top);
  const per = Number(values.per);
  const summary = summarize(profile, values.focus === undefined ? null : new RegExp(values.focus));
  const lines = [
    `${file}: busy ${(summary.totalUs / 1000).toFixed(0)} ms${per === 1 ? '' : ` (${(summary.totalUs / per).toFixed(1)} µs per unit of ${per})`}, idle ${(summary.idleUs / 1000).toFixed(0)} ms` +
      (values.focus === undefined ? '' : `, samples with a frame matching /${values.focus}/ only`),
    ...table('self by module', summary.selfByModule, summary.totalUs, top, per),
    ...table('inclusive by module', summary.inclusiveByModule, summary.totalUs, top, per),
    ...table('self by function', summary.selfByFunction, summary.totalUs, top, per),
    ...table('inclusive by function', summary.inclusiveByFunction, summary.totalUs, top, per),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
