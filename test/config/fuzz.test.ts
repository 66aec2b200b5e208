/**
 * Bounded fuzzing of parse + validate: random bytes, truncations of real config files and random
 * mutations of valid documents must never throw, never hang, and always position diagnostics.
 * Deterministic (seeded PRNG) so a failure reproduces; 2000+ iterations in a few seconds.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { buildKindRegistry } from '../../gateway/config/kinds/index.js';
import { parseConfigText } from '../../gateway/config/parse-documents.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { validateResources } from '../../gateway/config/validate.js';
import { prng, treeMutator } from '../helpers/prng.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const registry = buildKindRegistry();

const random = prng(20240607);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

function randomScalar(): unknown {
  return pick<() => unknown>([
    () => null,
    () => random() < 0.5,
    () => Math.floor(random() * 200_000) - 100_000,
    () => random() * 1e6,
    () => '',
    () => pick(['*', '1s', '-1s', '10', 'STRICT', 'UPGRADE', '(?=x)', '0.0.0.0/99', '/api/{**}', 'mesh', 'x'.repeat(2000)]),
    () => [],
    () => ({}),
    () => [randomScalar()],
    () => ({ [pick(['exact', 'prefix', 'regex', 'unknown', 'name'])]: randomScalar() }),
  ])();
}

/** Replaces or deletes a random node of the tree, or adds a random key somewhere. */
const mutate = treeMutator(random, randomScalar);

function check(t: { fail(message: string): unknown }, text: string, label: string): void {
  let diagnostics: Diagnostic[] = [];
  try {
    const parsed = parseConfigText(text, 'fuzz.yaml', registry);
    diagnostics = [...parsed.diagnostics, ...validateResources(parsed.resources)];
  } catch (error) {
    t.fail(`${label} threw: ${String(error)}\n${text.slice(0, 500)}`);
    return;
  }
  const bad = diagnostics.find((d) => !(d.position.line >= 1 && d.position.col >= 1 && /^MG\d{4}$/.test(d.code)));
  if (bad !== undefined) t.fail(`${label}: malformed diagnostic ${JSON.stringify(bad)}`);
}

const examples: string[] = [await readFile(join(repoRoot, 'config/examples/seed-istio.yaml'), 'utf8')];
for (const name of (await readdir(join(repoRoot, 'test/golden'))).filter((n) => n.endsWith('.in.yaml')).sort()) {
  examples.push(await readFile(join(repoRoot, 'test/golden', name), 'utf8'));
}

t.test('random bytes', async (t) => {
  for (let i = 0; i < 500; i++) {
    const bytes = Buffer.from(Array.from({ length: Math.floor(random() * 400) }, () => Math.floor(random() * 256)));
    check(t, bytes.toString('latin1'), `bytes #${i}`);
  }
  t.pass('500 random inputs');
});

t.test('truncations and splices of real files', async (t) => {
  for (let i = 0; i < 700; i++) {
    const source = pick(examples);
    const cut = Math.floor(random() * source.length);
    const text = random() < 0.5 ? source.slice(0, cut) : source.slice(0, cut) + pick(['\t', ': :', '[', '{', '&a *a', '- ', '\u0000', '"']) + source.slice(cut);
    check(t, text, `truncation #${i}`);
  }
  t.pass('700 truncated inputs');
});

t.test('random values of the right shapes', async (t) => {
  const documents = examples.flatMap((text) => text.split(/^---$/m)).flatMap((part) => {
    try {
      const value: unknown = parse(part);
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? [value] : [];
    } catch {
      return [];
    }
  });
  for (let i = 0; i < 1000; i++) {
    let value: unknown = pick(documents);
    for (let rounds = 1 + Math.floor(random() * 3); rounds > 0; rounds--) value = mutate(value);
    check(t, stringify(value), `mutation #${i}`);
  }
  t.pass('1000 mutated documents');
});

t.test('pathological YAML: deep nesting, alias bombs, huge keys', async (t) => {
  check(t, `${'['.repeat(5000)}${']'.repeat(5000)}`, 'deep flow');
  check(t, `${Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i)}a:`).join('\n')}\n`, 'deep block');
  check(t, 'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n', 'alias bomb');
  check(t, `${'k'.repeat(100_000)}: v\n`, 'huge key');
  t.pass('survived');
});
