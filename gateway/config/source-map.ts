/**
 * Maps field paths of a parsed YAML document back to `line:col`, so every later stage can point at
 * the offending field: a path to an offset in the document's text, an offset to a line and column. Map entries resolve to their key, list items to the item; a path that does
 * not exist in the source (a defaulted or missing field) resolves to its nearest existing parent.
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { Node, Pair } from 'yaml';
import type { FieldPath, SourcePosition } from './resource.js';

export function offsetOf(root: Node, path: FieldPath): number {
  let node: Node | null = root;
  let offset = root.range?.[0] ?? 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair: Pair<unknown, unknown> | undefined = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (pair === undefined) break;
      const key = pair.key as Node;
      offset = key.range?.[0] ?? offset;
      node = (pair.value as Node | null) ?? null;
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)] as Node | undefined;
      if (item === undefined || item === null) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** A document's text and the line (1-based) of its first character in its file. */
export interface PlacedText {
  readonly line: number;
  readonly text: string;
}

export function newlinesIn(text: string): number {
  let count = 0;
  for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', newline + 1)) count++;
  return count;
}

/** Offsets after each `\n` of a text, counted when a position in it is first asked for (most documents never get asked). */
const lineStarts = new WeakMap<PlacedText, Uint32Array>();

function lineStartsOf(placed: PlacedText): Uint32Array {
  let starts = lineStarts.get(placed);
  if (starts === undefined) {
    const { text } = placed;
    starts = new Uint32Array(newlinesIn(text) + 1);
    let index = 1;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', newline + 1)) starts[index++] = newline + 1;
    lineStarts.set(placed, starts);
  }
  return starts;
}

/** `line:col` of an offset in a placed text, lines ending at `\n` as `yaml`'s LineCounter counts them. */
export function positionAt(file: string, placed: PlacedText, offset: number): SourcePosition {
  const starts = lineStartsOf(placed);
  let [low, high] = [0, starts.length - 1];
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if ((starts[middle] as number) <= offset) low = middle;
    else high = middle - 1;
  }
  return { file, line: placed.line + low, col: offset - (starts[low] as number) + 1 };
}
