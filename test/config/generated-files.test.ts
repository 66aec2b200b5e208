/**
 * Committed generated files must match their generators. After an intended change, regenerate with
 * `npm run schema` (config/meshgate.schema.json) or run this test with UPDATE_GOLDEN=1 (both files).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { renderDiagnosticsMarkdown } from '../../gateway/config/diagnostics.js';
import { PUBLISHED_SCHEMA_PATH, buildPublishedSchema, renderPublishedSchema } from '../../gateway/config/published-schema.js';
import { PIPELINE_DIAGNOSTICS, PIPELINE_KINDS } from '../../gateway/composition/plugin-table.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

for (const [path, render] of [
  [PUBLISHED_SCHEMA_PATH, () => renderPublishedSchema(PIPELINE_KINDS)],
  ['docs/diagnostics.md', () => renderDiagnosticsMarkdown(PIPELINE_DIAGNOSTICS)],
] as const) {
  t.test(`${path} is up to date`, async (t) => {
    const file = join(repoRoot, path);
    if (process.env.UPDATE_GOLDEN === '1') await writeFile(file, render());
    t.equal(await readFile(file, 'utf8'), render(), `${path} is stale: regenerate it (UPDATE_GOLDEN=1)`);
  });
}

t.test('the published schema selects each kind by apiVersion and kind', async (t) => {
  const schema = buildPublishedSchema() as { allOf: { if: { properties: { kind: { const: string } } }; then: { properties: { spec: { additionalProperties?: boolean; required?: string[] } } } }[] };
  const byKind = new Map(schema.allOf.map((entry) => [entry.if.properties.kind.const, entry.then.properties.spec]));
  t.equal(byKind.get('VirtualService')?.additionalProperties, false, 'unknown fields are flagged in editors');
  t.same(byKind.get('MeshConfig')?.required, undefined, 'defaulted MeshConfig fields are optional in documents');
  t.same(byKind.get('DestinationRule')?.required, ['host']);
  t.notOk(JSON.stringify(schema).includes('meshgate-duration'), 'durations are published as a pattern editors understand');
});
