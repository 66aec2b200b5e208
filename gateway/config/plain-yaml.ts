/**
 * The fast reading of a config document. The `yaml` package builds a concrete syntax tree so that
 * diagnostics can point at `line:col`, and that costs ~10× what reading the values alone does (a
 * 10 000-rule file spent three quarters of its compile there). Most documents have nothing to report,
 * so their values are read with js-yaml and the syntax tree is built only when a position is asked
 * for (parse-documents.ts). js-yaml is trusted only where both parsers are known to agree: it resolves
 * plain scalars with the exact YAML 1.2 core schema of `yaml`, and a document that uses anything
 * `yaml` may warn about or treat differently is left to `yaml` (`undefined`).
 */
import { FAILSAFE_SCHEMA, Type, load } from 'js-yaml';
import { isRecord } from './field-path.js';

/** `yaml`'s core schema (yaml/dist/schema/core): the same forms resolve to the same values. */
const CORE_SCALARS = [
  new Type('tag:yaml.org,2002:null', { kind: 'scalar', resolve: (source: string) => /^(?:~|[Nn]ull|NULL)?$/.test(source), construct: () => null }),
  new Type('tag:yaml.org,2002:bool', {
    kind: 'scalar',
    resolve: (source: string) => /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/.test(source),
    construct: (source: string) => source[0] === 't' || source[0] === 'T',
  }),
  new Type('tag:yaml.org,2002:int', {
    kind: 'scalar',
    resolve: (source: string) => /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/.test(source),
    construct: (source: string) => (source.startsWith('0o') ? parseInt(source.slice(2), 8) : source.startsWith('0x') ? parseInt(source.slice(2), 16) : parseInt(source, 10)),
  }),
  new Type('tag:yaml.org,2002:float', {
    kind: 'scalar',
    resolve: (source: string) =>
      /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(source) ||
      /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(source) ||
      /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(source),
    construct: (source: string) =>
      source.endsWith('nan') || source.endsWith('NaN') || source.endsWith('NAN')
        ? NaN
        : /inf$/i.test(source)
          ? source[0] === '-'
            ? Number.NEGATIVE_INFINITY
            : Number.POSITIVE_INFINITY
          : parseFloat(source),
  }),
];
const CORE_SCHEMA = FAILSAFE_SCHEMA.extend({ implicit: CORE_SCALARS });

/** Anchors (`&`; an alias `*` needs one) and tags (`!`) are rare in configs; a document with either goes to `yaml`. */
const ANCHOR_OR_TAG = /[&!]/;
/** A null or empty mapping key: `yaml` makes it "", js-yaml "null". */
const NULL_KEY = /(?:^|[\s{,?[-])(?:~|null|Null|NULL)?[ \t]*:(?=[\s,\]}]|$)/m;
const NULL_KEY_HINT = /~|null|Null|NULL|\s:|[{,?[-]:/;
/** `yaml` rejects implicit keys longer than 1024 characters, js-yaml does not: long lines go to `yaml`. */
const MAX_KEY_LENGTH = 1024;

function hasLongLine(text: string): boolean {
  let lineStart = 0;
  for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', lineStart)) {
    if (newline - lineStart > MAX_KEY_LENGTH) return true;
    lineStart = newline + 1;
  }
  return text.length - lineStart > MAX_KEY_LENGTH;
}

function needsYaml(text: string): boolean {
  return ANCHOR_OR_TAG.test(text) || (NULL_KEY_HINT.test(text) && NULL_KEY.test(text)) || hasLongLine(text);
}

/**
 * Whether a flow collection (`[…]`, `{…}`) or a quoted scalar continues past the end of its line.
 * `yaml` warns when such a flow collection ends at its parent's indentation, so those documents go to
 * `yaml`. Brackets inside block plain scalars (`regex: a[0-9]+`) are counted too: an unbalanced one only
 * sends the document to the slow path.
 */
function spansLines(text: string): boolean {
  let depth = 0;
  let quote = '';
  let previous = '\n';
  for (let index = 0; index < text.length; index++) {
    const char = text[index] as string;
    if (quote !== '') {
      if (char === '\n') return true;
      if (quote === '"' && char === '\\') index++;
      else if (char === quote) quote = '';
    } else if (char === '#' && (previous === ' ' || previous === '\t' || previous === '\n')) {
      const end = text.indexOf('\n', index);
      if (end === -1) break;
      index = end - 1;
    } else if (char === '\n') {
      if (depth !== 0) return true;
    } else if (char === '[' || char === '{') {
      depth++;
    } else if (char === ']' || char === '}') {
      depth--;
    } else if (char === '"' || char === "'") {
      // An apostrophe inside a plain word (`it's`) is not a quote; a quote only opens a scalar after a separator.
      if (previous === ' ' || previous === '\t' || previous === '\n' || previous === ':' || previous === ',' || previous === '[' || previous === '{' || previous === '-') quote = char;
    }
    previous = char;
  }
  return depth !== 0 || quote !== '';
}

/** The document's value when it is a mapping js-yaml reads exactly as `yaml` does; `undefined` otherwise. */
export function readPlainDocument(text: string): Record<string, unknown> | undefined {
  if (needsYaml(text)) return undefined;
  if ((text.includes('[') || text.includes('{') || text.includes('"') || text.includes("'")) && spansLines(text)) return undefined;
  let value: unknown;
  let warned = false;
  try {
    value = load(text, { schema: CORE_SCHEMA, onWarning: () => (warned = true) });
  } catch {
    return undefined;
  }
  return !warned && isRecord(value) ? value : undefined;
}
