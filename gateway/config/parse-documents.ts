/**
 * One file's text → resources + diagnostics. Every YAML document is parsed, its envelope checked,
 * Istio defaults applied and its spec validated; all problems of a document are reported (not just
 * the first). A document with an error yields no resource. Never throws on any input.
 */
import { LineCounter, parseAllDocuments } from 'yaml';
import type { Document, Node } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import { makeDiagnostic } from './diagnostics.js';
import type { DiagnosticCode } from './diagnostics.js';
import { readEnvelope } from './envelope.js';
import { formatFieldPath, isRecord } from './field-path.js';
import type { KindRegistry } from './kinds/index.js';
import type { Diagnostic, FieldPath, Resource, ResourceMetadata, SourcePosition } from './resource.js';
import { schemaProblems } from './schema-errors.js';
import { locate, positionAt } from './source-map.js';

export interface ParsedFile {
  readonly resources: Resource[];
  readonly diagnostics: Diagnostic[];
}

/** Documents are numbered globally across files; the caller passes the next number and gets it back. */
export interface DocumentCounter {
  next: number;
}

function hasCycle(value: unknown, ancestors = new Set<object>()): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (ancestors.has(value)) return true;
  ancestors.add(value);
  const children = Array.isArray(value) ? value : Object.values(value);
  for (const child of children) {
    if (hasCycle(child, ancestors)) return true;
  }
  ancestors.delete(value);
  return false;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function syntaxCode(code: string): DiagnosticCode {
  return code === 'DUPLICATE_KEY' ? 'MG0003' : 'MG0002';
}

function firstLine(message: string): string {
  return message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
}

function parseDocuments(text: string, file: string, lineCounter: LineCounter, diagnostics: Diagnostic[]): Document.Parsed[] {
  try {
    return parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false }) as Document.Parsed[];
  } catch (error) {
    // The composer recurses per nesting level; absurdly deep input can exhaust the stack.
    const reason = error instanceof Error ? error.message : String(error);
    diagnostics.push(makeDiagnostic('MG0002', `cannot parse: ${reason}`, { file, line: 1, col: 1 }));
    return [];
  }
}

function toResource(
  document: Document.Parsed,
  root: Node,
  file: string,
  lineCounter: LineCounter,
  registry: KindRegistry,
  counter: DocumentCounter,
  diagnostics: Diagnostic[],
): Resource | undefined {
  const at = (path: FieldPath): SourcePosition => locate(file, lineCounter, root, path);
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    diagnostics.push(makeDiagnostic('MG0013', error instanceof Error ? firstLine(error.message) : 'cannot resolve aliases', at([])));
    return undefined;
  }
  if (hasCycle(value)) {
    diagnostics.push(makeDiagnostic('MG0013', 'an alias refers to its own ancestor', at([])));
    return undefined;
  }
  if (!isRecord(value)) {
    diagnostics.push(makeDiagnostic('MG0004', 'document must be a mapping with apiVersion, kind, metadata and spec', at([])));
    return undefined;
  }
  const envelope = readEnvelope(value, registry);
  if (envelope.skipped) {
    for (const problem of envelope.problems) {
      diagnostics.push(makeDiagnostic(problem.code, problem.message, at(problem.path), envelope.kind === '' ? {} : { kind: envelope.kind }));
    }
    return undefined;
  }
  const order = counter.next++;
  const subject = {
    ...(envelope.kind === '' ? {} : { kind: envelope.kind }),
    ...(envelope.metadata === undefined ? {} : { namespace: envelope.metadata.namespace, name: envelope.metadata.name }),
  };
  let failed = false;
  const report = (code: DiagnosticCode, path: (string | number)[], message: string): void => {
    const diagnostic = makeDiagnostic(code, message, at(path), { ...subject, ...(path.length > 0 ? { field: formatFieldPath(path) } : {}) });
    if (diagnostic.severity === 'error') failed = true;
    diagnostics.push(diagnostic);
  };
  for (const problem of envelope.problems) report(problem.code, problem.path, problem.message);
  if (envelope.definition === undefined) return undefined;

  // Defaults first, so that required-with-default fields (MeshConfig) are satisfied by omission.
  const spec: unknown = Value.Default(envelope.definition.spec, structuredClone(envelope.spec));
  for (const problem of schemaProblems(envelope.definition.spec, spec)) {
    report(problem.code, ['spec', ...problem.path], problem.message);
  }
  let topLevel: unknown;
  if (envelope.definition.topLevel !== undefined) {
    topLevel = Value.Default(envelope.definition.topLevel, structuredClone(envelope.topLevel ?? {}));
    for (const problem of schemaProblems(envelope.definition.topLevel, topLevel)) report(problem.code, problem.path, problem.message);
  }
  if (failed || envelope.metadata === undefined) return undefined;
  const metadata: ResourceMetadata = envelope.metadata;
  return {
    apiVersion: envelope.apiVersion,
    kind: envelope.kind,
    metadata: deepFreeze(metadata),
    spec: deepFreeze(spec),
    ...(topLevel === undefined ? {} : { topLevel: deepFreeze(topLevel as Record<string, unknown>) }),
    source: { ...at([]), order },
    at,
  };
}

export function parseConfigText(text: string, file: string, registry: KindRegistry, counter: DocumentCounter = { next: 0 }): ParsedFile {
  const diagnostics: Diagnostic[] = [];
  const resources: Resource[] = [];
  const lineCounter = new LineCounter();
  for (const document of parseDocuments(text, file, lineCounter, diagnostics)) {
    let broken = false;
    for (const error of document.errors) {
      broken = true;
      diagnostics.push(makeDiagnostic(syntaxCode(error.code), firstLine(error.message), positionAt(file, lineCounter, error.pos[0])));
    }
    for (const warning of document.warnings) {
      diagnostics.push(makeDiagnostic('MG0012', firstLine(warning.message), positionAt(file, lineCounter, warning.pos[0])));
    }
    const root = document.contents;
    if (broken || root === null) continue;
    const resource = toResource(document, root, file, lineCounter, registry, counter, diagnostics);
    if (resource !== undefined) resources.push(resource);
  }
  diagnostics.sort((a, b) => a.position.line - b.position.line || a.position.col - b.position.col);
  return { resources, diagnostics };
}
