/**
 * `meshgate inject` (as `istioctl kube-inject`): Kubernetes YAML in (a file or stdin, multi-document,
 * `kind: List` too), the same YAML out with every Deployment/StatefulSet/DaemonSet/ReplicaSet/Pod
 * given its sidecar, followed by the mesh Service, WorkloadEntry and Sidecar each one needs. Other
 * documents pass through as they were. Idempotent: injecting the output again changes nothing. Any
 * workload it cannot inject stops the command with the reason and its line, and nothing is written.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { LineCounter, parseDocument, stringify } from 'yaml';
import { isRecord } from '../config/field-path.js';
import type { Values } from './args.js';
import { INJECT_DEFAULTS } from './inject-defaults.js';
import { injectObject } from './inject-pod.js';
import type { InjectOptions, JsonObject } from './inject-pod.js';
import { EXIT_INVALID, EXIT_OK } from './usage.js';

const MESH_KINDS = new Set(['WorkloadEntry', 'Sidecar']);

export interface InjectResult {
  readonly ok: boolean;
  /** Kubernetes documents (and, without a separate mesh output, the mesh resources too). */
  readonly output: string;
  /** WorkloadEntry and Sidecar documents, for `--mesh-output`. */
  readonly mesh: string;
  /** Refusals (ok false) or notes and the summary (ok true), one per line. */
  readonly messages: readonly string[];
}

interface Emitted {
  readonly text: string;
  readonly mesh: boolean;
}

function identity(object: JsonObject, defaultNamespace: string): string {
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  return `${String(object.kind)}/${typeof metadata.namespace === 'string' ? metadata.namespace : defaultNamespace}/${String(metadata.name)}`;
}

function label(object: JsonObject, defaultNamespace: string): string {
  return identity(object, defaultNamespace).replace('/', ' ');
}

const asText = (value: unknown): string => stringify(value, { lineWidth: 0, aliasDuplicateObjects: false }).trimEnd();

interface Chunk {
  readonly text: string;
  /** 1-based line of the chunk's first line in the whole input. */
  readonly firstLine: number;
}

/**
 * The input cut at its `---` lines (a `---` at column 0 always starts a document in YAML), so an
 * untouched document is written back as the very text it came as, comments and layout included.
 */
function splitDocuments(text: string): Chunk[] {
  const chunks: Chunk[] = [];
  let lines: string[] = [];
  let firstLine = 1;
  text.split('\n').forEach((line, index) => {
    if (/^---(\s|$)/.test(line)) {
      chunks.push({ text: lines.join('\n'), firstLine });
      lines = [line.slice(3)];
      firstLine = index + 1;
    } else {
      lines.push(line);
    }
  });
  chunks.push({ text: lines.join('\n'), firstLine });
  return chunks.filter((chunk) => chunk.text.trim() !== '');
}

/** Injects every workload of `text` (the content of `file`, for messages). */
export function injectText(text: string, file: string, options: InjectOptions, separateMesh: boolean): InjectResult {
  const documents = splitDocuments(text).map((chunk) => {
    const lineCounter = new LineCounter();
    const document = parseDocument(chunk.text, { lineCounter, prettyErrors: false });
    const lineAt = (offset: number): { line: number; col: number } => {
      const position = lineCounter.linePos(offset);
      return { line: position.line + chunk.firstLine - 1, col: position.col };
    };
    return { chunk, document, lineAt };
  });
  const messages: string[] = [];
  const refusals: string[] = [];
  for (const { document, lineAt } of documents) {
    for (const error of document.errors) {
      const { line, col } = lineAt(error.pos[0]);
      refusals.push(`${file}:${line}:${col}: YAML error: ${error.message.split('\n')[0] ?? ''}`);
    }
  }
  if (refusals.length > 0) return { ok: false, output: '', mesh: '', messages: refusals };

  const values = documents.map(({ document }) => document.toJS({ maxAliasCount: 1000 }) as unknown);
  // Already present (a re-injection of our own output): never emitted twice.
  const present = new Set<string>();
  for (const value of values) {
    if (!isRecord(value)) continue;
    const items = value.kind === 'List' && Array.isArray(value.items) ? value.items.filter(isRecord) : [value];
    for (const item of items) present.add(identity(item as JsonObject, options.namespace));
  }

  const emitted: Emitted[] = [];
  let injected = 0;
  let already = 0;
  const emitGenerated = (generated: readonly JsonObject[]): void => {
    for (const object of generated) {
      const key = identity(object, options.namespace);
      if (present.has(key)) continue;
      present.add(key);
      emitted.push({ text: asText(object), mesh: MESH_KINDS.has(String(object.kind)) });
    }
  };
  /** The object to write in place of `object` (itself when untouched), or undefined after a refusal. */
  const inject = (object: JsonObject, line: number): JsonObject | undefined => {
    const outcome = injectObject(object, options);
    switch (outcome.kind) {
      case 'injected':
        injected += 1;
        pendingGenerated.push(...outcome.generated);
        return outcome.object;
      case 'already-injected':
        already += 1;
        pendingGenerated.push(...outcome.generated);
        return object;
      case 'skipped':
        if (/Deployment|StatefulSet|DaemonSet|ReplicaSet|Pod|Job/.test(String(object.kind))) messages.push(`${file}:${line}: ${label(object, options.namespace)}: not injected: ${outcome.reason}`);
        return object;
      case 'refused':
        refusals.push(`${file}:${line}: ${label(object, options.namespace)}: cannot inject: ${outcome.reason}`);
        return undefined;
    }
  };
  let pendingGenerated: JsonObject[] = [];

  documents.forEach(({ chunk, document, lineAt }, index) => {
    const value = values[index];
    if (value === null || value === undefined) return;
    const line = lineAt(document.contents?.range[0] ?? 0).line;
    pendingGenerated = [];
    let changed = false;
    if (isRecord(value) && value.kind === 'List' && Array.isArray(value.items)) {
      const items = value.items.map((item: unknown) => {
        if (!isRecord(item)) return item;
        const result = inject(item as JsonObject, line);
        if (result !== item) changed = true;
        return result;
      });
      if (changed) emitted.push({ text: asText({ ...value, items }), mesh: false });
    } else if (isRecord(value)) {
      const result = inject(value as JsonObject, line);
      if (result !== value && result !== undefined) {
        changed = true;
        emitted.push({ text: asText(result), mesh: false });
      }
    }
    // Untouched documents keep their text and comments.
    if (!changed) emitted.push({ text: chunk.text.trim(), mesh: isRecord(value) && MESH_KINDS.has(String(value.kind)) });
    emitGenerated(pendingGenerated);
  });
  if (refusals.length > 0) return { ok: false, output: '', mesh: '', messages: refusals };

  const join = (parts: readonly Emitted[]): string => (parts.length === 0 ? '' : `${parts.map((part) => part.text).join('\n---\n')}\n`);
  messages.push(
    `meshgate inject: ${injected} workload(s) injected, ${already} already injected. Put the WorkloadEntry and Sidecar documents in the mesh config (ConfigMap ${options.configMap}); each workload's ServiceEntry needs resolution: DNS and a port named http.`,
  );
  return {
    ok: true,
    output: join(separateMesh ? emitted.filter((part) => !part.mesh) : emitted),
    mesh: separateMesh ? join(emitted.filter((part) => part.mesh)) : '',
    messages,
  };
}

async function readInput(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function injectCommand(values: Values): Promise<number> {
  const file = typeof values.filename === 'string' ? values.filename : '-';
  const string = (name: string, fallback: string): string => (typeof values[name] === 'string' ? (values[name] as string) : fallback);
  let text: string;
  try {
    text = await readInput(file);
  } catch (error) {
    process.stderr.write(`meshgate inject: cannot read ${file}: ${(error as Error).message}\n`);
    return EXIT_INVALID;
  }
  const meshOutput = typeof values['mesh-output'] === 'string' ? values['mesh-output'] : undefined;
  const result = injectText(
    text,
    file === '-' ? '<stdin>' : file,
    {
      image: string('image', INJECT_DEFAULTS.image),
      configMap: string('config-map', INJECT_DEFAULTS.configMap),
      identitySecretPrefix: string('identity-secret-prefix', INJECT_DEFAULTS.identitySecretPrefix),
      namespace: string('namespace', 'default'),
      clusterDomain: string('cluster-domain', 'cluster.local'),
    },
    meshOutput !== undefined,
  );
  for (const message of result.messages) process.stderr.write(`${message}\n`);
  if (!result.ok) return EXIT_INVALID;
  if (meshOutput !== undefined) await writeFile(meshOutput, result.mesh);
  process.stdout.write(result.output);
  return EXIT_OK;
}
