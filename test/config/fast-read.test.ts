/**
 * The fast reading of config documents (js-yaml for values, `yaml`'s syntax tree only when a position
 * is asked for) must read every file exactly as `yaml` does: the same resources, the same diagnostics
 * at the same positions, the same position for every field. Compared on real files, truncations and
 * splices of them, and mutated documents in block, flow and quoted styles (seeded, so a failure
 * reproduces). Stack exhaustion on absurd nesting is left out: where it strikes depends on the stack.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { buildKindRegistry } from '../../gateway/config/kinds/index.js';
import { parseConfigText, parseConfigTextWithYaml } from '../../gateway/config/parse-documents.js';
import type { ParsedFile } from '../../gateway/config/parse-documents.js';
import { readPlainDocument } from '../../gateway/config/plain-yaml.js';
import type { FieldPath } from '../../gateway/config/resource.js';
import { rateLimitPlugin } from '../../plugins/ratelimit/index.js';
import { prng, treeMutator } from '../helpers/prng.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const registry = buildKindRegistry(rateLimitPlugin.kinds);

const random = prng(20261205);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

const TRICKY_SCALARS = ['null', '~', 'Null', '0x1F', '0o17', '017', '1e3', '.5', '1.', '.inf', '-.INF', '.NaN', '1_000', '+12', 'yes', 'on', 'True', 'FALSE', 'a: b', '- x', '#c', 'a #c', "it's", '"q"', '[1]', '{a}', '', ' lead', 'trail ', 'two\nlines', 'x'.repeat(1100), 'ünïcödé ✓', '𝄞 clef', 'ä\nö'];

function randomScalar(): unknown {
  return pick<() => unknown>([
    () => null,
    () => random() < 0.5,
    () => Math.floor(random() * 200_000) - 100_000,
    () => random() * 1e6,
    () => pick(TRICKY_SCALARS),
    () => [],
    () => ({}),
    () => [randomScalar()],
    () => ({ [pick(['exact', 'prefix', 'regex', 'name', 'null', '1', 'x'.repeat(1100)])]: randomScalar() }),
  ])();
}

/** Replaces or deletes a random node of the tree, or adds a random key somewhere. */
const mutate = treeMutator(random, randomScalar);

function fieldPaths(value: unknown, path: FieldPath = [], out: FieldPath[] = []): FieldPath[] {
  out.push(path);
  if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) fieldPaths(child, [...path, Array.isArray(value) ? Number(key) : key], out);
  }
  return out;
}

/** Everything a later stage can read from a parse, positions of every field included. */
function observable(parsed: ParsedFile): string {
  return JSON.stringify({
    diagnostics: parsed.diagnostics,
    resources: parsed.resources.map((resource) => ({
      apiVersion: resource.apiVersion,
      kind: resource.kind,
      metadata: resource.metadata,
      spec: resource.spec,
      topLevel: resource.topLevel,
      source: resource.source,
      positions: [...fieldPaths({ metadata: resource.metadata, spec: resource.spec }), ['spec', 'absent'], ['kind']].map((path) => resource.at(path)),
    })),
  });
}

function compare(t: { fail(message: string): unknown }, text: string, label: string): boolean {
  const fast = observable(parseConfigText(text, 'same.yaml', registry));
  const reference = observable(parseConfigTextWithYaml(text, 'same.yaml', registry));
  if (fast === reference) return true;
  let at = 0;
  while (fast[at] === reference[at]) at++;
  t.fail(`${label} reads differently\n${text.slice(0, 400)}\nfast:      …${fast.slice(Math.max(0, at - 120), at + 200)}\nreference: …${reference.slice(Math.max(0, at - 120), at + 200)}`);
  return false;
}

const examples: string[] = [
  await readFile(join(repoRoot, 'config/examples/seed-istio.yaml'), 'utf8'),
  await readFile(join(repoRoot, 'config/demo/mesh.yaml'), 'utf8'),
];
for (const name of (await readdir(join(repoRoot, 'test/golden'))).filter((n) => n.endsWith('.in.yaml')).sort()) {
  examples.push(await readFile(join(repoRoot, 'test/golden', name), 'utf8'));
}

t.test('real files read the same', async (t) => {
  for (const [index, text] of examples.entries()) compare(t, text, `example #${index}`);
  t.pass(`${examples.length} files`);
});

t.test('truncations and splices of real files read the same', async (t) => {
  const splices = ['\t', ': :', '[', '{', ']', '&a *a', '!t ', '- ', '\u0000', '"', "'", '\n---\n', '\n...\n', '\n%YAML 1.2\n', ' #', '\n]\n', ' null: 1\n', '\r\n', '\n  ', '\uFEFF'];
  for (let i = 0; i < 400; i++) {
    const source = pick(examples);
    const cut = Math.floor(random() * source.length);
    const text = random() < 0.3 ? source.slice(0, cut) : source.slice(0, cut) + pick(splices) + source.slice(cut);
    compare(t, text, `splice #${i}`);
  }
  t.pass('400 inputs');
});

t.test('mutated documents in every style read the same', async (t) => {
  const documents = examples.flatMap((text) => text.split(/^---$/m)).flatMap((part) => {
    try {
      const value: unknown = parse(part);
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? [value] : [];
    } catch {
      return [];
    }
  });
  const styles = [{}, {}, { collectionStyle: 'flow' as const }, { defaultStringType: 'QUOTE_DOUBLE' as const }, { defaultStringType: 'QUOTE_SINGLE' as const }, { defaultStringType: 'BLOCK_LITERAL' as const }, { defaultStringType: 'BLOCK_FOLDED' as const }, { indentSeq: false }];
  for (let i = 0; i < 400; i++) {
    const parts: string[] = [];
    for (let count = 1 + Math.floor(random() * 3); count > 0; count--) {
      let value: unknown = pick(documents);
      for (let rounds = 1 + Math.floor(random() * 3); rounds > 0; rounds--) value = mutate(value);
      parts.push(stringify(value, pick(styles)));
    }
    compare(t, parts.join(pick(['---\n', '--- # next\n', '\n---\n\n', '---\n# comment\n'])), `mutation #${i}`);
  }
  t.pass('400 files');
});

t.test('hand-written corner cases read the same', async (t) => {
  const cases = [
    'apiVersion: v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [\n    a.example.com\n  ]\n',
    'apiVersion: v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.example.com,\n  b]\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: ["a.example.com",\n    "b.example.com"]\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: "multi\n    line"\nspec: {}\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\nspec:\n  hosts:\n  - |\n    literal\n  - >-\n    folded\n    text\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\n  labels: {~: x, 1: y, 0x10: z, .inf: w}\nspec: {}\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  <<: {x: 1}\n  __proto__: {y: 2}\n',
    '---\n---\n--- # empty documents\n',
    '--- {apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: a}, spec: {hosts: [a]}}\n',
    '--- 42\n--- [a]\n--- "text"\n--- null\n',
    '# only a comment\n',
    '\uFEFFapiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a]}\n',
    'apiVersion: networking.istio.io/v1\r\nkind: ServiceEntry\r\nmetadata: {name: a}\r\nspec: {hosts: [a], ports: [{number: 08, name: x}]}\r\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a]}\nspec: {hosts: [b]}\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a]}\n...\n---\nkind: x\n',
    'a:\tb\n',
    `${'k'.repeat(1100)}: v\n`,
  ];
  for (const [index, text] of cases.entries()) compare(t, text, `case #${index}`);
  t.pass(`${cases.length} cases`);
});

t.test('ordinary documents take the fast path; what js-yaml could read differently does not', async (t) => {
  const plain = 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: api }\nspec:\n  hosts: ["api.example.com"]\n  http:\n    - match: [{ uri: { regex: "/items/[0-9]+" } }]\n      route: [{ destination: { host: items } }]\n';
  t.ok(readPlainDocument(plain), 'block and one-line flow style, quoted strings, brackets in a regex');
  for (const [why, text] of [
    ['an anchor', 'a: &x 1\nb: *x\n'],
    ['a tag', 'a: !custom 1\n'],
    ['a null key', '~: 1\n'],
    ['an empty key', 'a: 1\n: 2\n'],
    ['a key past 1024 characters', `${'k'.repeat(1025)}: 1\n`],
    ['a flow collection over two lines', 'a: [1,\n2]\n'],
    ['a quoted scalar over two lines', 'a: "x\n  y"\n'],
    ['not a mapping', '- a\n'],
    ['a syntax error', 'a: [\n'],
  ] as const) {
    t.equal(readPlainDocument(text), undefined, why);
  }
});

t.test('an unchanged document is not read again, yet reports its diagnostics where it now sits; a changed one is read again', async (t) => {
  const entry = (name: string, extra = ''): string => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ${name}}\nspec:\n  hosts: [${name}.example.com]\n${extra}`;
  const broken = entry('broken', '  resolution: STATICK\n');
  const first = parseConfigText(`${entry('first')}---\n${entry('kept')}---\n${broken}`, 'a.yaml', registry);
  const second = parseConfigText(`${entry('first')}---\n${entry('added')}---\n${entry('kept')}---\n${broken}`, 'a.yaml', registry);
  const kept = (parsed: ParsedFile) => parsed.resources.find((resource) => resource.metadata.name === 'kept');
  t.ok(kept(second)?.spec === kept(first)?.spec, 'the same frozen spec: the document was not read again');
  t.same(kept(second)?.source, { file: 'a.yaml', line: 13, col: 1, order: 2 });
  t.same(kept(second)?.at(['spec', 'hosts', 0]), { file: 'a.yaml', line: 17, col: 11 });
  const where = (parsed: ParsedFile) => parsed.diagnostics.map((d) => `${d.position.line}:${d.position.col} ${d.code} ${d.field ?? ''}`);
  t.same(where(first), ['18:3 MG0104 spec.resolution']);
  t.same(where(second), ['24:3 MG0104 spec.resolution'], 'the cached problem is placed at the document\'s new position');
  const changed = parseConfigText(`${entry('first')}---\n${entry('kept', '  resolution: DNS\n')}---\n${entry('broken', '  resolution: STATIC\n')}`, 'a.yaml', registry);
  t.ok(kept(changed)?.spec !== kept(first)?.spec, 'a changed document is read again');
  t.same(kept(changed)?.spec, { hosts: ['kept.example.com'], resolution: 'DNS', location: 'MESH_EXTERNAL' });
  t.same(changed.diagnostics, [], 'and validated again: the fixed document has no problem left');
});
