/**
 * One file's text → resources + diagnostics. Every YAML document is parsed, its envelope checked,
 * Istio defaults applied and its spec validated; all problems of a document are reported (not just
 * the first). A document with an error yields no resource. Never throws on any input.
 *
 * Each document is first read for its values alone (plain-yaml.ts); its syntax tree, which maps field
 * paths to `line:col`, is built when a diagnostic asks for a position. Documents js-yaml does not read
 * exactly as `yaml` would go to `yaml` directly, and a file in which `yaml` finds a syntax error is
 * parsed whole by it, so that syntax errors are reported as a whole-file parse reports them.
 */
import { parseAllDocuments } from 'yaml';
import type { Document, Node } from 'yaml';
import { DIAGNOSTICS, makeDiagnostic } from './diagnostics.js';
import type { DiagnosticCode, DiagnosticSubject } from './diagnostics.js';
import { readEnvelope } from './envelope.js';
import { formatFieldPath, isRecord } from './field-path.js';
import type { KindDefinition, KindRegistry } from './kinds/index.js';
import type { Diagnostic, FieldPath, Resource, ResourceMetadata, SourcePosition } from './resource.js';
import { readPlainDocument } from './plain-yaml.js';
import { deepFreeze } from './frozen.js';
import { applyDefaults } from './schema-defaults.js';
import { schemaProblems } from './schema-errors.js';
import { newlinesIn, offsetOf, positionAt } from './source-map.js';
import type { PlacedText } from './source-map.js';
import { runSteps } from './steps.js';
import type { Steps } from './steps.js';

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

function syntaxCode(code: string): DiagnosticCode {
  return code === 'DUPLICATE_KEY' ? 'MG0003' : 'MG0002';
}

function firstLine(message: string): string {
  return message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
}

type Locate = (path: FieldPath) => SourcePosition;

/** Directives and `...` end markers tie a document to its neighbours: such a file is parsed whole. */
const STREAM_SYNTAX = /^(?:%|\.\.\.(?=[ \t\r\n]|$))/m;

const MARKER = Buffer.from('---');
const [LF, CR, SPACE, TAB] = [0x0a, 0x0d, 0x20, 0x09];

/** A `---` line always starts a document (YAML forbids it inside content), so documents can be cut apart on it. */
function isDocumentStart(bytes: Buffer, marker: number): boolean {
  const [before, after] = [bytes[marker - 1], bytes[marker + 3]];
  return (before === LF || before === CR) && (after === undefined || after === SPACE || after === TAB || after === CR || after === LF);
}

/**
 * A file's documents, each decoded from the file's bytes on its own: a document's text, which its
 * resource keeps for positions, holds no part of the file but itself, and the whole file's text is
 * never built (a 2 MB file's costs ~7 ms in one stretch when it is first searched). A marker's bytes
 * are ASCII after a line break, so no multi-byte character is ever cut.
 */
function* splitDocuments(bytes: Buffer): Generator<PlacedText> {
  let [start, line] = [0, 1];
  for (let marker = bytes.indexOf(MARKER, 1); ; marker = bytes.indexOf(MARKER, marker + 1)) {
    if (marker !== -1 && !isDocumentStart(bytes, marker)) continue;
    const chunk = { line, text: bytes.toString('utf8', start, marker === -1 ? bytes.length : marker) };
    yield chunk;
    if (marker === -1) return;
    [start, line] = [marker, line + newlinesIn(chunk.text)];
  }
}

function isMarkerAt(text: string, index: number): boolean {
  const after = text[index + 3];
  return (index === 0 || text[index - 1] === '\n') && text.startsWith('---', index) && (after === undefined || ' \t\r\n'.includes(after));
}

/** Offset of a document's root node: past a byte-order mark, blank lines, comments and the `---` marker. */
function contentStart(text: string): number {
  let index = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    const char = text[index];
    if (char === ' ' || char === '\t' || char === '\r' || char === '\n') index++;
    else if (char === '#') index = text.includes('\n', index) ? text.indexOf('\n', index) : text.length;
    else if (isMarkerAt(text, index)) index += 3;
    else return index;
  }
}

function parseDocuments(chunk: PlacedText, report: (offset: number, code: DiagnosticCode, message: string) => void): Document.Parsed[] {
  try {
    return parseAllDocuments(chunk.text, { uniqueKeys: true, prettyErrors: false }) as Document.Parsed[];
  } catch (error) {
    // The composer recurses per nesting level; absurdly deep input can exhaust the stack.
    report(-1, 'MG0002', `cannot parse: ${error instanceof Error ? error.message : String(error)}`);
    return [];
  }
}

interface FileContext {
  readonly file: string;
  readonly registry: KindRegistry;
  readonly counter: DocumentCounter;
  readonly diagnostics: Diagnostic[];
  readonly resources: Resource[];
}

/** Where a document's root node begins, found without a table of the chunk's lines (most documents never need one). */
function rootPosition(context: FileContext, chunk: PlacedText): SourcePosition {
  const offset = contentStart(chunk.text);
  const head = chunk.text.slice(0, offset);
  return { file: context.file, line: chunk.line + newlinesIn(head), col: offset - (head.lastIndexOf('\n') + 1) + 1 };
}

/** Positions inside a document parsed by `yaml` from `chunk`. */
function treeLocator(context: FileContext, chunk: PlacedText, root: Node): Locate {
  return (path) => positionAt(context.file, chunk, offsetOf(root, path));
}

/** Positions inside a document read by js-yaml: its syntax tree is built on the first question. */
function lazyLocator(context: FileContext, chunk: PlacedText): Locate {
  let locate: Locate | undefined;
  const build = (): Locate => {
    const root = parseDocuments(chunk, () => undefined)[0]?.contents;
    return root == null ? () => rootPosition(context, chunk) : treeLocator(context, chunk, root);
  };
  return (path) => (locate ??= build())(path);
}

/**
 * Parses `chunk` with `yaml` and reads its documents. Returns false when `yaml` found a syntax error,
 * having added only that chunk's syntax diagnostics.
 */
function composeChunk(context: FileContext, chunk: PlacedText): boolean {
  const { diagnostics } = context;
  let valid = true;
  const documents = parseDocuments(chunk, (offset, code, message) => {
    valid = false;
    diagnostics.push(makeDiagnostic(code, message, offset < 0 ? { file: context.file, line: 1, col: 1 } : positionAt(context.file, chunk, offset)));
  });
  for (const document of documents) {
    let broken = false;
    for (const error of document.errors) {
      broken = true;
      valid = false;
      diagnostics.push(makeDiagnostic(syntaxCode(error.code), firstLine(error.message), positionAt(context.file, chunk, error.pos[0])));
    }
    for (const warning of document.warnings) {
      diagnostics.push(makeDiagnostic('MG0012', firstLine(warning.message), positionAt(context.file, chunk, warning.pos[0])));
    }
    const root = document.contents;
    if (broken || root === null) continue;
    const at = treeLocator(context, chunk, root);
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: 1000 });
    } catch (error) {
      diagnostics.push(makeDiagnostic('MG0013', error instanceof Error ? firstLine(error.message) : 'cannot resolve aliases', at([])));
      continue;
    }
    if (hasCycle(value)) {
      diagnostics.push(makeDiagnostic('MG0013', 'an alias refers to its own ancestor', at([])));
      continue;
    }
    placeDocument(context, evaluateDocument(value, context.registry), at, at([]));
  }
  return valid;
}

/** A problem of a document, its position still a field path. */
interface DocumentProblem {
  readonly code: DiagnosticCode;
  readonly message: string;
  readonly path: FieldPath;
  readonly subject: DiagnosticSubject;
}

/** What a document's values amount to, wherever the document sits: the same text always gives the same outcome. */
interface DocumentOutcome {
  readonly problems: readonly DocumentProblem[];
  /** Whether the document takes a place in the document order (every mesh resource does, valid or not). */
  readonly ordered: boolean;
  readonly resource: Omit<Resource, 'source' | 'at'> | undefined;
}

function evaluateDocument(value: unknown, registry: KindRegistry): DocumentOutcome {
  const problems: DocumentProblem[] = [];
  if (!isRecord(value)) {
    problems.push({ code: 'MG0004', message: 'document must be a mapping with apiVersion, kind, metadata and spec', path: [], subject: {} });
    return { problems, ordered: false, resource: undefined };
  }
  const envelope = readEnvelope(value, registry);
  if (envelope.skipped) {
    for (const problem of envelope.problems) problems.push({ ...problem, subject: envelope.kind === '' ? {} : { kind: envelope.kind } });
    return { problems, ordered: false, resource: undefined };
  }
  const subject = {
    ...(envelope.kind === '' ? {} : { kind: envelope.kind }),
    ...(envelope.metadata === undefined ? {} : { namespace: envelope.metadata.namespace, name: envelope.metadata.name }),
  };
  let failed = false;
  const report = (code: DiagnosticCode, path: (string | number)[], message: string): void => {
    if (DIAGNOSTICS.get(code)?.severity === 'error') failed = true;
    problems.push({ code, message, path, subject: { ...subject, ...(path.length > 0 ? { field: formatFieldPath(path) } : {}) } });
  };
  for (const problem of envelope.problems) report(problem.code, problem.path, problem.message);
  if (envelope.definition === undefined) return { problems, ordered: true, resource: undefined };

  // Defaults first, so that required-with-default fields (MeshConfig) are satisfied by omission.
  const spec: unknown = applyDefaults(envelope.definition.spec, structuredClone(envelope.spec));
  for (const problem of schemaProblems(envelope.definition.spec, spec)) {
    report(problem.code, ['spec', ...problem.path], problem.message);
  }
  let topLevel: unknown;
  if (envelope.definition.topLevel !== undefined) {
    topLevel = applyDefaults(envelope.definition.topLevel, structuredClone(envelope.topLevel ?? {}));
    for (const problem of schemaProblems(envelope.definition.topLevel, topLevel)) report(problem.code, problem.path, problem.message);
  }
  if (failed || envelope.metadata === undefined) return { problems, ordered: true, resource: undefined };
  const metadata: ResourceMetadata = envelope.metadata;
  return {
    problems,
    ordered: true,
    resource: {
      apiVersion: envelope.apiVersion,
      kind: envelope.kind,
      metadata: deepFreeze(metadata),
      spec: deepFreeze(spec),
      ...(topLevel === undefined ? {} : { topLevel: deepFreeze(topLevel as Record<string, unknown>) }),
    },
  };
}

/** The outcome placed in its file: diagnostics at positions, the resource with its order and locator. */
function placeDocument(context: FileContext, outcome: DocumentOutcome, at: Locate, start: SourcePosition): void {
  for (const problem of outcome.problems) context.diagnostics.push(makeDiagnostic(problem.code, problem.message, at(problem.path), problem.subject));
  if (!outcome.ordered) return;
  const order = context.counter.next++;
  if (outcome.resource !== undefined) context.resources.push({ ...outcome.resource, source: { ...start, order }, at });
}

/**
 * Outcomes of documents read by js-yaml, by their text: a reload re-reads and re-validates only the
 * documents that changed. Resources are frozen, so snapshots share them, and what is compiled from a
 * spec is kept by it (compile-route.ts). Two generations are kept, what the last load read and what
 * the current one has read so far, so that documents gone from the config are let go with all that
 * hangs off them. Valid for one set of kinds (plugins bring theirs); bounded so that a caller parsing
 * ever-new documents outside loads does not keep them all.
 */
const MAX_CACHED_DOCUMENTS = 50_000;

interface ReadDocument {
  /** The text as first read: kept (with its positions) by every later load of the same text. */
  readonly text: string;
  readonly outcome: DocumentOutcome;
}

let documentCache: { kinds: readonly KindDefinition[]; previous: Map<string, ReadDocument>; current: Map<string, ReadDocument> } = {
  kinds: [],
  previous: new Map(),
  current: new Map(),
};

/** A load begins: the documents read since the last one began become the ones it may reuse. */
export function beginDocumentGeneration(): void {
  documentCache.previous = documentCache.current;
  documentCache.current = new Map();
}

function cachedDocument(registry: KindRegistry, text: string): ReadDocument | undefined {
  const { kinds } = documentCache;
  const sameKinds = kinds.length === registry.kinds.length && kinds.every((kind, index) => kind.spec === registry.kinds[index]?.spec && kind.kind === registry.kinds[index]?.kind);
  if (!sameKinds) documentCache = { kinds: registry.kinds, previous: new Map(), current: new Map() };
  const current = documentCache.current.get(text);
  if (current !== undefined) return current;
  const previous = documentCache.previous.get(text);
  if (previous !== undefined) rememberDocument(previous);
  return previous;
}

function rememberDocument(document: ReadDocument): void {
  if (documentCache.current.size >= MAX_CACHED_DOCUMENTS) documentCache.current.clear();
  documentCache.current.set(document.text, document);
}

function readPlainChunk(context: FileContext, chunk: PlacedText): boolean {
  let document = cachedDocument(context.registry, chunk.text);
  if (document === undefined) {
    const value = readPlainDocument(chunk.text);
    if (value === undefined) return false;
    document = { text: chunk.text, outcome: evaluateDocument(value, context.registry) };
    rememberDocument(document);
  }
  // Positions come from the text first read, so this load's copy of an unchanged document dies young.
  const located = { line: chunk.line, text: document.text };
  placeDocument(context, document.outcome, lazyLocator(context, located), rootPosition(context, located));
  return true;
}

/**
 * Reads the file document by document, pausing after each; false when one of them has a directive or
 * a `...` marker (which only `yaml` reads as a stream) or a syntax error `yaml` found.
 */
function* readChunks(context: FileContext, bytes: Buffer): Steps<boolean> {
  for (const chunk of splitDocuments(bytes)) {
    if (chunk.text === '') continue;
    if (STREAM_SYNTAX.test(chunk.text)) return false;
    if (!readPlainChunk(context, chunk) && !composeChunk(context, chunk)) return false;
    yield;
  }
  return true;
}

function sorted(context: FileContext): ParsedFile {
  const { resources, diagnostics } = context;
  diagnostics.sort((a, b) => a.position.line - b.position.line || a.position.col - b.position.col);
  return { resources, diagnostics };
}

/** Every document through `yaml` at once: what `parseConfigText` reads the file as, only slower. */
export function parseConfigTextWithYaml(text: string, file: string, registry: KindRegistry, counter: DocumentCounter = { next: 0 }): ParsedFile {
  const context: FileContext = { file, registry, counter, diagnostics: [], resources: [] };
  composeChunk(context, { line: 1, text });
  return sorted(context);
}

/**
 * The reading of one file as steps, one document each, so that a caller serving requests can let them
 * run between documents (loadConfig); `parseConfigText` runs it in one go.
 */
export function* readConfigBytes(bytes: Buffer, file: string, registry: KindRegistry, counter: DocumentCounter = { next: 0 }): Steps<ParsedFile> {
  const firstOrder = counter.next;
  const context: FileContext = { file, registry, counter, diagnostics: [], resources: [] };
  if (yield* readChunks(context, bytes)) return sorted(context);
  counter.next = firstOrder;
  return parseConfigTextWithYaml(bytes.toString('utf8'), file, registry, counter);
}

export function parseConfigText(text: string, file: string, registry: KindRegistry, counter: DocumentCounter = { next: 0 }): ParsedFile {
  return runSteps(readConfigBytes(Buffer.from(text, 'utf8'), file, registry, counter));
}
