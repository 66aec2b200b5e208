/** Prints diagnostics for people (`file:line:col CODE kind namespace/name: message`) or machines (JSON). */
import type { Diagnostic } from './resource.js';

function subject(diagnostic: Diagnostic): string {
  const parts: string[] = [];
  if (diagnostic.kind !== undefined) parts.push(diagnostic.kind);
  if (diagnostic.name !== undefined) parts.push(`${diagnostic.namespace ?? ''}/${diagnostic.name}`);
  return parts.length === 0 ? '' : ` ${parts.join(' ')}`;
}

function formatLine(diagnostic: Diagnostic): string {
  const { file, line, col } = diagnostic.position;
  const severity = diagnostic.severity === 'error' ? '' : `${diagnostic.severity}: `;
  // The field path makes the message stand on its own, even where the message does not repeat the field.
  const field = diagnostic.field === undefined || diagnostic.field === '' ? '' : `${diagnostic.field}: `;
  return `${file}:${line}:${col} ${diagnostic.code}${subject(diagnostic)}: ${severity}${field}${diagnostic.message}`;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

export function summarize(diagnostics: readonly Diagnostic[]): string {
  const count = (severity: Diagnostic['severity']) => diagnostics.filter((d) => d.severity === severity).length;
  const infos = count('info');
  return `${plural(count('error'), 'error')}, ${plural(count('warning'), 'warning')}${infos > 0 ? `, ${infos} info` : ''}`;
}

/** By file, then position: the order a reader fixes them in. Stable, so one position keeps its order of discovery. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return diagnostics.toSorted(
    (a, b) =>
      (a.position.file < b.position.file ? -1 : a.position.file > b.position.file ? 1 : 0) ||
      a.position.line - b.position.line ||
      a.position.col - b.position.col,
  );
}

export function formatDiagnostics(diagnostics: readonly Diagnostic[], format: 'text' | 'json'): string {
  const sorted = sortDiagnostics(diagnostics);
  if (format === 'json') return `${JSON.stringify(sorted, null, 2)}\n`;
  return [...sorted.map(formatLine), summarize(sorted)].join('\n') + '\n';
}
