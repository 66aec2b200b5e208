/**
 * Golden diagnostics: each test/golden/<case>.in.yaml is loaded and validated; its diagnostics must
 * equal <case>.diagnostics.json (compared as data). Regenerate after an intended change with
 * UPDATE_GOLDEN=1. The cases together must exercise every catalogue code except the few that need
 * generated input (checked in load.test.ts).
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DIAGNOSTICS } from '../../gateway/config/diagnostics.js';
import { loadConfig } from '../../gateway/config/load.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { validateResources } from '../../gateway/config/validate.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const goldenDir = join(repoRoot, 'test', 'golden');
const update = process.env.UPDATE_GOLDEN === '1';
/**
 * Codes that need input a golden file cannot sensibly hold (missing paths, megabyte bodies), or that
 * stages after loading and validation report (registry, listeners, routes, proxy identity).
 */
const CODES_TESTED_ELSEWHERE = new Set([
  // test/config/load.test.ts
  'MG0001',
  'MG0011',
  'MG0209',
  'MG0210',
  // test/upstream/policy-registry.test.ts ("registry: a host defined twice …")
  'MG0219',
  // test/listeners/plan.test.ts
  'MG0406',
  'MG0407',
  'MG0408',
  'MG0409',
  // test/router/table.test.ts
  'MG0701',
  'MG0702',
  // test/snapshot/proxy-identity.test.ts
  'MG0901',
  'MG0902',
  'MG0903',
  'MG0904',
  'MG0905',
  // test/dapr/kinds.test.ts (the Dapr checks run when a snapshot is compiled, for a sidecar's app id)
  'MG1301',
  'MG1302',
  'MG1303',
  'MG1304',
  'MG1305',
  'MG1306',
  // test/dapr/pubsub-units.test.ts (pub/sub block compile)
  'MG1320',
]);

/** Independent of where the repository is checked out: file names only, in positions and in messages. */
function portable(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return diagnostics.map((d) => ({
    ...d,
    message: d.message.split(`${goldenDir}/`).join(''),
    position: { ...d.position, file: basename(d.position.file) },
  }));
}

const seenCodes = new Set<string>();
const cases = (await readdir(goldenDir)).filter((name) => name.endsWith('.in.yaml')).sort();

for (const input of cases) {
  const name = input.slice(0, -'.in.yaml'.length);
  await t.test(name, async (t) => {
    const loaded = await loadConfig(join(goldenDir, input));
    const actual = portable([...loaded.diagnostics, ...validateResources(loaded.resources)]);
    for (const diagnostic of actual) seenCodes.add(diagnostic.code);
    const expectedFile = join(goldenDir, `${name}.diagnostics.json`);
    if (update) await writeFile(expectedFile, `${JSON.stringify(actual, null, 2)}\n`);
    const expected: unknown = JSON.parse(await readFile(expectedFile, 'utf8'));
    t.same(actual, expected, `diagnostics of ${input} (UPDATE_GOLDEN=1 to regenerate)`);
  });
}

t.test('the golden cases cover every diagnostic code', async (t) => {
  const missing = [...DIAGNOSTICS.keys()].filter((code) => !seenCodes.has(code) && !CODES_TESTED_ELSEWHERE.has(code));
  t.same(missing, [], 'codes without a golden case');
});
