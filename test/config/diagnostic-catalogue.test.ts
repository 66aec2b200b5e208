/**
 * ONE catalogue of diagnostic codes: the core's (gateway/config/diagnostics.ts) plus the ones plugins
 * declare (`MeshPlugin.diagnostics`). No code may be defined twice, and every code the source emits as
 * a literal must be defined, so that docs/diagnostics.md explains every code a user can see.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DIAGNOSTICS, diagnosticCatalogue } from '../../gateway/config/diagnostics.js';
import { PIPELINE_DIAGNOSTICS } from '../../gateway/composition/plugin-table.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const SCANNED_FOLDERS = ['gateway', 'plugins'];
const CODE_LITERAL = /(['"`])(MG\d{4})\1/g;

async function typeScriptFiles(folder: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) files.push(...(await typeScriptFiles(path)));
    else if (entry.isFile() && entry.name.endsWith('.ts')) files.push(path);
  }
  return files;
}

/** `code → ["file:line", …]` for every quoted MG code in the source folders. */
async function codeLiterals(): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  for (const folder of SCANNED_FOLDERS) {
    for (const file of await typeScriptFiles(join(repoRoot, folder))) {
      const lines = (await readFile(file, 'utf8')).split('\n');
      lines.forEach((line, index) => {
        for (const match of line.matchAll(CODE_LITERAL)) {
          const code = match[2] as string;
          found.set(code, [...(found.get(code) ?? []), `${relative(repoRoot, file)}:${index + 1}`]);
        }
      });
    }
  }
  return found;
}

t.test('no two definitions share a code', async (t) => {
  const counts = new Map<string, number>();
  for (const { code } of [...DIAGNOSTICS.values(), ...PIPELINE_DIAGNOSTICS]) counts.set(code, (counts.get(code) ?? 0) + 1);
  t.same([...counts].filter(([, count]) => count > 1), [], 'codes defined more than once');
  t.ok(PIPELINE_DIAGNOSTICS.some((d) => d.code === 'MG1101'), 'the plugin table contributes the rate-limit codes');
  t.ok(PIPELINE_DIAGNOSTICS.some((d) => d.code === 'MG0801'), 'the plugin table contributes the access-log code');
});

t.test('every definition has a well-formed code, a severity, a title and an explanation', async (t) => {
  const malformed = diagnosticCatalogue(PIPELINE_DIAGNOSTICS).filter(
    (d) => !/^MG\d{4}$/.test(d.code) || !['error', 'warning', 'info'].includes(d.severity) || d.title.trim() === '' || !d.explanation.trim().endsWith('.'),
  );
  t.same(malformed.map((d) => d.code), []);
});

t.test('every code literal in gateway/ and plugins/ is in the catalogue', async (t) => {
  const defined = new Set(diagnosticCatalogue(PIPELINE_DIAGNOSTICS).map((d) => d.code));
  const literals = await codeLiterals();
  t.ok(literals.get('MG0219')?.some((where) => where.startsWith('gateway/upstream/registry.ts')), 'the scan reaches the emitting modules');
  t.ok(literals.get('MG1101')?.some((where) => where.startsWith('plugins/ratelimit/')), 'the scan reaches the plugins');
  const undefinedCodes = [...literals].filter(([code]) => !defined.has(code)).map(([code, where]) => `${code} at ${where.join(', ')}`);
  t.same(undefinedCodes, [], 'codes used in the source but defined nowhere');
});
