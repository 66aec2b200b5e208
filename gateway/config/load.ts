/**
 * Loads a config file or directory (non-recursive `*.yaml|*.yml|*.json`, sorted by name; dotfiles such
 * as editor swap files are skipped). File order is document order, which Istio's "oldest wins"
 * rules map onto. Never throws on bad input: every problem becomes a diagnostic.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDiagnostic } from './diagnostics.js';
import { buildKindRegistry } from './kinds/index.js';
import type { PluginKind } from './kinds/index.js';
import { beginDocumentGeneration, readConfigBytes } from './parse-documents.js';
import type { DocumentCounter } from './parse-documents.js';
import type { Diagnostic, Resource } from './resource.js';
import { runStepsSliced } from './steps.js';
import type { Steps } from './steps.js';

export interface LoadOptions {
  readonly extraKinds?: readonly PluginKind[];
}

export interface LoadResult {
  readonly resources: Resource[];
  readonly diagnostics: Diagnostic[];
  readonly files: string[];
  /** sha256 (hex) of the file contents, in load order. */
  readonly hash: string;
}

const CONFIG_FILE = /\.(ya?ml|json)$/i;
/** Bytes hashed per step: a 10 000-rule config is 2 MB, whose hashing in one piece takes ~5 ms. */
const PIECE_BYTES = 64 * 1024;


/** Whether a directory entry is read as config (dotfiles such as editor swap files are not). */
export function isConfigFileName(name: string): boolean {
  return CONFIG_FILE.test(name) && !name.startsWith('.');
}

async function listFiles(path: string, diagnostics: Diagnostic[]): Promise<string[]> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    diagnostics.push(makeDiagnostic('MG0001', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { file: path, line: 1, col: 1 }));
    return [];
  }
  if (!isDirectory) return [path];
  let entries;
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (error) {
    diagnostics.push(makeDiagnostic('MG0001', `cannot list ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { file: path, line: 1, col: 1 }));
    return [];
  }
  const candidates = entries.filter((entry) => isConfigFileName(entry.name));
  // Kubernetes ConfigMap volumes expose every file as a symlink into `..data/`: follow links to files.
  const isConfigFile = async (entry: (typeof entries)[number]): Promise<boolean> =>
    entry.isFile() || (entry.isSymbolicLink() && (await stat(join(path, entry.name)).then((s) => s.isFile(), () => false)));
  const kept = await Promise.all(candidates.map(isConfigFile));
  const files = candidates
    .filter((_entry, index) => kept[index])
    .map((entry) => entry.name)
    .sort()
    .map((name) => join(path, name));
  if (files.length === 0) {
    diagnostics.push(makeDiagnostic('MG0011', `no *.yaml, *.yml or *.json files in ${path}`, { file: path, line: 1, col: 1 }));
  }
  return files;
}

/** A file's bytes into the hash, a piece per step. */
function* hashSteps(bytes: Buffer, hash: Hash): Steps<void> {
  for (let start = 0; start < bytes.length; start += PIECE_BYTES) {
    hash.update(bytes.subarray(start, start + PIECE_BYTES));
    yield;
  }
}

export async function loadConfig(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  const registry = buildKindRegistry(options.extraKinds);
  const diagnostics: Diagnostic[] = [];
  const resources: Resource[] = [];
  const hash = createHash('sha256');
  const counter: DocumentCounter = { next: 0 };
  const files = await listFiles(path, diagnostics);
  beginDocumentGeneration();
  const loaded: string[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      diagnostics.push(makeDiagnostic('MG0001', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { file, line: 1, col: 1 }));
      continue;
    }
    await runStepsSliced(hashSteps(bytes, hash));
    loaded.push(file);
    const parsed = await runStepsSliced(readConfigBytes(bytes, file, registry, counter));
    resources.push(...parsed.resources);
    diagnostics.push(...parsed.diagnostics);
  }
  return { resources, diagnostics, files: loaded, hash: hash.digest('hex') };
}
