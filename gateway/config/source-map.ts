/**
 * Maps field paths of a parsed YAML document back to `line:col`, so every later stage can point at
 * the offending field. Map entries resolve to their key, list items to the item; a path that does
 * not exist in the source (a defaulted or missing field) resolves to its nearest existing parent.
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { LineCounter, Node, Pair } from 'yaml';
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

export function positionAt(file: string, lineCounter: LineCounter, offset: number): SourcePosition {
  const { line, col } = lineCounter.linePos(offset);
  return { file, line, col };
}
