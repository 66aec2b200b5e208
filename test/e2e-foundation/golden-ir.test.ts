/**
 * Golden IR: each test/golden-ir/<case>.in.yaml is compiled exactly as `run` compiles it and rendered
 * with describeIr; the result must equal <case>.ir.json. The first line of the input says how the
 * proxy runs (`# golden-ir: mode=sidecar workload=ns/name`). Regenerate after an intended change
 * with UPDATE_GOLDEN=1 and review the diff.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import { describeIr } from '../../gateway/snapshot/describe-ir.js';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import { REPO_ROOT } from './fixtures.js';

const goldenDir = join(REPO_ROOT, 'test', 'golden-ir');
const update = process.env.UPDATE_GOLDEN === '1';

function runOptions(firstLine: string): { mode: 'ingress' | 'sidecar'; workloadName?: string } {
  const header = /^# golden-ir: mode=(ingress|sidecar)(?: workload=(\S+))?$/.exec(firstLine);
  if (header === null) throw new Error(`the first line must be "# golden-ir: mode=ingress|sidecar [workload=ns/name]", got "${firstLine}"`);
  const mode = header[1] as 'ingress' | 'sidecar';
  return header[2] === undefined ? { mode } : { mode, workloadName: header[2] };
}

const cases = (await readdir(goldenDir)).filter((name) => name.endsWith('.in.yaml')).sort();

t.ok(cases.length >= 3, 'golden IR cases exist');

for (const input of cases) {
  const name = input.slice(0, -'.in.yaml'.length);
  await t.test(name, async (t) => {
    const path = join(goldenDir, input);
    const options = runOptions((await readFile(path, 'utf8')).split('\n')[0] ?? '');
    const compiled = await compileConfig(path, { ...options, plugins: PIPELINE_PLUGINS });
    if (!compiled.ok) {
      t.fail(`${input} does not compile: ${compiled.diagnostics.map((d) => `${d.position.line}:${d.position.col} ${d.code} ${d.message}`).join('; ')}`);
      return;
    }
    const actual = describeIr(compiled.config, goldenDir);
    const expectedFile = join(goldenDir, `${name}.ir.json`);
    if (update) await writeFile(expectedFile, `${JSON.stringify(actual, null, 2)}\n`);
    const expected: unknown = JSON.parse(await readFile(expectedFile, 'utf8'));
    t.same(actual, expected, `compiled IR of ${input} (UPDATE_GOLDEN=1 to regenerate)`);
  });
}

t.test('the description is deterministic and holds no absolute path', async (t) => {
  const path = join(goldenDir, cases[0] ?? '');
  const options = runOptions((await readFile(path, 'utf8')).split('\n')[0] ?? '');
  const [first, second] = await Promise.all([compileConfig(path, { ...options, plugins: PIPELINE_PLUGINS }), compileConfig(path, { ...options, plugins: PIPELINE_PLUGINS })]);
  if (!first.ok || !second.ok) return t.fail('does not compile');
  const text = JSON.stringify(describeIr(first.config, goldenDir));
  t.equal(text, JSON.stringify(describeIr(second.config, goldenDir)));
  t.notMatch(text, goldenDir, 'no absolute config path');
  t.notMatch(text, /"(loadedAt|time)"/, 'no timestamps');
});
