/**
 * The compiled defaults (gateway/config/schema-defaults.ts) fill in exactly what TypeBox's
 * `Value.Default` does, for every kind's schema, on valid documents and on random mutations of them
 * (seeded), including documents with the defaulted fields missing, null or of the wrong shape.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { buildKindRegistry } from '../../gateway/config/kinds/index.js';
import { applyDefaults } from '../../gateway/config/schema-defaults.js';
import { rateLimitPlugin } from '../../plugins/ratelimit/index.js';
import { prng } from '../helpers/prng.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const registry = buildKindRegistry(rateLimitPlugin.kinds);

const random = prng(77);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** Deletes, nulls or replaces one random field, so that defaults have gaps to fill and shapes to reject. */
function mutate(value: unknown): unknown {
  if (Array.isArray(value)) {
    if (value.length === 0) return random() < 0.5 ? [{}] : [null];
    const index = Math.floor(random() * value.length);
    return value.map((item, i) => (i === index ? mutate(item) : item));
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return random() < 0.5 ? value : { unknown: 1 };
    const index = Math.floor(random() * entries.length);
    const roll = random();
    if (roll < 0.25) return Object.fromEntries(entries.filter((_, i) => i !== index));
    return Object.fromEntries(entries.map(([k, v], i) => [k, i !== index ? v : roll < 0.4 ? null : roll < 0.5 ? pick([{}, [], 'x', 3]) : mutate(v)]));
  }
  return pick([undefined, null, {}, [], 'x', 0]);
}

function check(t: { fail(message: string): unknown }, schema: TSchema, value: unknown, label: string): void {
  const expected = JSON.stringify(Value.Default(schema, structuredClone(value)));
  const actual = JSON.stringify(applyDefaults(schema, structuredClone(value)));
  if (actual !== expected) t.fail(`${label}: ${JSON.stringify(value)?.slice(0, 300)}\ncompiled:    ${actual}\ninterpreted: ${expected}`);
}

const texts = [await readFile(join(repoRoot, 'config/examples/seed-istio.yaml'), 'utf8'), await readFile(join(repoRoot, 'config/demo/mesh.yaml'), 'utf8')];
for (const name of (await readdir(join(repoRoot, 'test/golden'))).filter((n) => n.endsWith('.in.yaml')).sort()) {
  texts.push(await readFile(join(repoRoot, 'test/golden', name), 'utf8'));
}
const documents = texts.flatMap((text) => parseAllDocuments(text).map((document) => document.toJS() as unknown));

t.test('every kind: valid and mutated specs get the same defaults as Value.Default', async (t) => {
  let compared = 0;
  for (const definition of registry.kinds) {
    const specs = documents.flatMap((document) => (typeof document === 'object' && document !== null && (document as { kind?: unknown }).kind === definition.kind ? [(document as { spec?: unknown }).spec] : []));
    for (const spec of [undefined, {}, ...specs]) {
      check(t, definition.spec, spec, `${definition.kind} as written`);
      let value = spec;
      for (let round = 0; round < 40; round++) {
        value = mutate(value ?? {});
        check(t, definition.spec, value, `${definition.kind} mutation ${round}`);
        compared++;
      }
    }
    if (definition.topLevel !== undefined) check(t, definition.topLevel, {}, `${definition.kind} top level`);
  }
  t.ok(compared > 500, `${compared} comparisons`);
});

t.test('unions, records and defaults on objects and arrays behave as the interpreter', async (t) => {
  const Shape = Type.Object(
    {
      mode: Type.Union([Type.Literal('A'), Type.Literal('B')], { default: 'A' }),
      either: Type.Optional(Type.Union([Type.Object({ a: Type.Number({ default: 1 }) }, { additionalProperties: false }), Type.Object({ b: Type.String({ default: 'b' }) })])),
      list: Type.Array(Type.Object({ n: Type.Number({ default: 0 }) }), { default: [] }),
      byName: Type.Optional(Type.Record(Type.String(), Type.Object({ on: Type.Boolean({ default: true }) }, { default: {} }))),
      settings: Type.Object({ level: Type.Integer({ default: 3 }) }, { default: {} }),
    },
    { additionalProperties: false },
  );
  for (const value of [undefined, {}, { mode: 'B' }, { either: {} }, { either: { b: 'x' } }, { either: { c: 1 } }, { list: [{}, { n: 2 }, null] }, { byName: { x: {}, y: { on: false }, z: null } }, { settings: null }, { settings: { other: 1 } }, []]) {
    check(t, Shape, value, JSON.stringify(value) ?? 'undefined');
  }
  t.pass('compared');
});
