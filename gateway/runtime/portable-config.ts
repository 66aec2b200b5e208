/**
 * A read and validated config as it crosses from the supervisor to its worker threads
 * (worker-supervisor.ts): plain data, no functions. The supervisor reads, validates and compiles the
 * config once per start or reload — the one compile, whose diagnostics carry file, line and field —
 * and every worker builds its own closures (route tables, matchers, plugin states) from this with
 * compileRead: closures cannot cross threads, but reading and validating need not be repeated. The
 * supervisor posts it as soon as it is read and validated: the workers build their closures while the
 * supervisor finishes its own compile, whose hash and diagnostics come with the commit.
 *
 * Each resource's content is v8-serialised once, into SharedArrayBuffers that every worker reads
 * (postMessage would serialise and copy the whole config per worker and per reload). A resource
 * whose document did not change since the last reload keeps its id and its bytes: the supervisor does
 * not serialise it again and a worker reuses the object it deserialised before, so a reload that
 * changed one document moves one document's bytes. What is left to deserialise is deserialised
 * between slices of the worker's traffic.
 */
import { deserialize, serialize } from 'node:v8';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import { deepFreeze } from '../config/frozen.js';
import type { Diagnostic, FieldPath, Resource, ResourceMetadata, SourcePosition } from '../config/resource.js';
import { runStepsSliced } from '../config/steps.js';
import type { Steps } from '../config/steps.js';
import { compileRead } from '../snapshot/snapshot.js';
import type { CompileOptions, CompileResult, ReadConfig } from '../snapshot/snapshot.js';

export interface PortableConfig {
  readonly contentHash: string;
  readonly files: readonly string[];
  readonly mesh: MeshConfigSpec;
  readonly resources: PortableResources;
}

/** What a whole compile says about a config: what the workers' snapshots of it carry. */
export interface CompileSummary {
  /** Files and what plugins read beside them: a worker whose plugins read something else disagrees. */
  readonly hash: string;
  /** Positions included: every worker's snapshot shows these, not its own compile's. */
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * A diagnostic of a worker's compile on its way back to the supervisor. A worker's resources know
 * where their documents start but not where each field is (that map stays with the supervisor's
 * read): the field's path, with the resource's index in the posted table, lets the supervisor place
 * it with its own `at`. No resource: the position was not a field's (a document start, a file).
 */
export interface PortableDiagnostic {
  readonly diagnostic: Diagnostic;
  readonly resource?: number;
  readonly path?: FieldPath;
}

/** The resources in document order, column-wise so that posting them copies a few arrays, not 10 000 objects. */
export interface PortableResources {
  /** Where the serialised contents are; shared by every worker and by later reloads. */
  readonly batches: readonly SharedArrayBuffer[];
  /** The source files the positions name. */
  readonly sourceFiles: readonly string[];
  /** FIELDS numbers per resource. */
  readonly table: Uint32Array;
}

/** Per resource: its content's id, where that content is (batch, start, end), and its position (file, line, col, order). */
const FIELDS = 8;
type Content = Omit<Resource, 'at' | 'source'>;

interface SerialisedContent {
  readonly id: number;
  readonly batch: SharedArrayBuffer;
  readonly start: number;
  readonly end: number;
}

/**
 * The supervisor's side: contents serialised before, by resource. The config reader shares the
 * metadata object of a document whose text did not change (parse-documents.ts), and host expansion
 * depends only on that document and the cluster domain, so that object stands for the content.
 */
let nextContentId = 1;
let serialised: { readonly clusterDomain: string; readonly contents: WeakMap<ResourceMetadata, SerialisedContent> } = { clusterDomain: '', contents: new WeakMap() };

export async function toPortable(read: Pick<ReadConfig, 'contentHash' | 'files' | 'mesh' | 'resources'>): Promise<PortableConfig> {
  const { contentHash, files, mesh } = read;
  if (mesh.clusterDomain !== serialised.clusterDomain) serialised = { clusterDomain: mesh.clusterDomain, contents: new WeakMap() };
  return { contentHash, files, mesh, resources: await runStepsSliced(serialiseSteps(read.resources, serialised.contents)) };
}

function* serialiseSteps(resources: readonly Resource[], known: WeakMap<ResourceMetadata, SerialisedContent>): Steps<PortableResources> {
  const fresh: { resource: Resource; bytes: Uint8Array }[] = [];
  for (const resource of resources) {
    if (known.has(resource.metadata)) continue;
    const { apiVersion, kind, metadata, spec, topLevel } = resource;
    const content: Content = topLevel === undefined ? { apiVersion, kind, metadata, spec } : { apiVersion, kind, metadata, spec, topLevel };
    fresh.push({ resource, bytes: serialize(content) });
    yield;
  }
  if (fresh.length > 0) {
    const batch = new SharedArrayBuffer(fresh.reduce((total, { bytes }) => total + bytes.byteLength, 0));
    const view = new Uint8Array(batch);
    let end = 0;
    for (const { resource, bytes } of fresh) {
      view.set(bytes, end);
      known.set(resource.metadata, { id: nextContentId++, batch, start: end, end: end + bytes.byteLength });
      end += bytes.byteLength;
    }
  }
  const batches = new Map<SharedArrayBuffer, number>();
  const sourceFiles = new Map<string, number>();
  const table = new Uint32Array(resources.length * FIELDS);
  for (const [index, resource] of resources.entries()) {
    const content = known.get(resource.metadata) as SerialisedContent;
    if (!batches.has(content.batch)) batches.set(content.batch, batches.size);
    if (!sourceFiles.has(resource.source.file)) sourceFiles.set(resource.source.file, sourceFiles.size);
    const { line, col, order, file } = resource.source;
    table.set([content.id, batches.get(content.batch) as number, content.start, content.end, sourceFiles.get(file) as number, line, col, order], index * FIELDS);
  }
  return { batches: [...batches.keys()], sourceFiles: [...sourceFiles.keys()], table };
}

/** The worker's side: the contents of its last compile by id, reused when the next config still has them. */
let deserialised = new Map<number, Content>();
/** The positions a worker's `at` handed out, by object: what field of which resource each stands for. */
const fieldPositions = new WeakMap<SourcePosition, { readonly resource: number; readonly path: FieldPath }>();

function fieldPosition(resource: number, { file, line, col }: SourcePosition, path: FieldPath): SourcePosition {
  const position = { file, line, col };
  fieldPositions.set(position, { resource, path });
  return position;
}

function* deserialiseSteps({ batches, sourceFiles, table }: PortableResources): Steps<{ resources: Resource[]; contents: Map<number, Content> }> {
  const resources: Resource[] = [];
  const contents = new Map<number, Content>();
  for (let offset = 0; offset < table.length; offset += FIELDS) {
    const [id, batch, start, end, file, line, col, order] = table.subarray(offset, offset + FIELDS) as unknown as [number, number, number, number, number, number, number, number];
    let content = deserialised.get(id) ?? contents.get(id);
    if (content === undefined) {
      // Frozen as the supervisor's are: what is compiled from a frozen spec is kept for later reloads (compile-route.ts).
      content = deepFreeze(deserialize(new Uint8Array(batches[batch] as SharedArrayBuffer, start, end - start)) as Content);
      yield;
    }
    contents.set(id, content);
    const source = { file: sourceFiles[file] as string, line, col, order };
    const index = resources.length;
    // Only a diagnostic asks for a field's position: the document's start, marked so that the supervisor can place the field.
    resources.push({ ...content, source, at: (path) => fieldPosition(index, source, path) });
  }
  return { resources, contents };
}

/**
 * A worker's compile: the closures from the supervisor's read. The supervisor builds none of its own:
 * this compile's hash (what plugins read beside the files) and diagnostics (portableDiagnostics, placed
 * by the supervisor) are the reload's. Two workers' hashes differ only when a plugin module was saved
 * between their compiles: the supervisor then posts again.
 */
export async function compilePortable(portable: PortableConfig, configPath: string, options: CompileOptions): Promise<CompileResult> {
  const { resources, contents } = await runStepsSliced(deserialiseSteps(portable.resources));
  deserialised = contents;
  const read = { contentHash: portable.contentHash, files: portable.files, mesh: portable.mesh, resources, diagnostics: [] };
  return compileRead(read, configPath, options, []);
}

/** The worker's side: its compile's diagnostics, each field position marked with its resource and path. */
export function portableDiagnostics(diagnostics: readonly Diagnostic[]): PortableDiagnostic[] {
  return diagnostics.map((diagnostic) => ({ diagnostic, ...fieldPositions.get(diagnostic.position) }));
}

/** The supervisor's side: a worker's diagnostics with the positions of the fields they name, from the read it posted. */
export function placeDiagnostics(diagnostics: readonly PortableDiagnostic[], resources: readonly Resource[]): Diagnostic[] {
  return diagnostics.map(({ diagnostic, resource, path }) => {
    const placed = resource === undefined || path === undefined ? undefined : resources[resource];
    return placed === undefined || path === undefined ? diagnostic : { ...diagnostic, position: placed.at(path) };
  });
}
