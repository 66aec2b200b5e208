/**
 * A read and validated config as it crosses from the supervisor to its worker threads
 * (worker-supervisor.ts): plain data, no functions. The supervisor reads, validates and compiles the
 * config once per start or reload — the one compile, whose diagnostics carry file, line and field —
 * and every worker builds its own closures (route tables, matchers, plugin states) from this with
 * compileRead: closures cannot cross threads, but reading and validating need not be repeated.
 *
 * The resources travel v8-serialised in batches in one SharedArrayBuffer: serialised once and held
 * once whatever the number of workers (postMessage would serialise and copy per worker), and
 * deserialised batch by batch between slices of a worker's traffic (a 10 000-rule config is ~2 MB
 * and ~80 ms to deserialise in one go).
 */
import { deserialize, serialize } from 'node:v8';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import { runStepsSliced } from '../config/steps.js';
import type { Steps } from '../config/steps.js';
import { compileRead } from './snapshot.js';
import type { CompileOptions, CompileResult, CompiledConfig } from './snapshot.js';

export interface PortableConfig {
  /** The compile's hash (files and what plugins read beside them): a worker whose plugins read something else disagrees. */
  readonly hash: string;
  readonly contentHash: string;
  readonly files: readonly string[];
  readonly mesh: MeshConfigSpec;
  /** The one compile's diagnostics, positions included: the snapshot's, in every worker. */
  readonly diagnostics: readonly Diagnostic[];
  readonly resources: SerialisedResources;
}

export interface SerialisedResources {
  readonly bytes: SharedArrayBuffer;
  /** Where each batch ends in `bytes` (the next one starts there). */
  readonly batchEnds: readonly number[];
}

type PlainResource = Omit<Resource, 'at'>;

/** Enough resources to take a few ms to deserialise. */
const BATCH = 256;

function* serialiseSteps(resources: readonly Resource[]): Steps<SerialisedResources> {
  const batches: Uint8Array[] = [];
  for (let start = 0; start < resources.length; start += BATCH) {
    const plain: PlainResource[] = resources.slice(start, start + BATCH).map(({ at: _at, ...resource }) => resource);
    batches.push(serialize(plain));
    yield;
  }
  const bytes = new SharedArrayBuffer(batches.reduce((total, batch) => total + batch.byteLength, 0));
  const view = new Uint8Array(bytes);
  const batchEnds: number[] = [];
  let end = 0;
  for (const batch of batches) {
    view.set(batch, end);
    end += batch.byteLength;
    batchEnds.push(end);
  }
  return { bytes, batchEnds };
}

function* deserialiseSteps({ bytes, batchEnds }: SerialisedResources): Steps<Resource[]> {
  const resources: Resource[] = [];
  let start = 0;
  for (const end of batchEnds) {
    const batch = deserialize(new Uint8Array(bytes, start, end - start)) as PlainResource[];
    start = end;
    for (const plain of batch) {
      // Only the worker's own compile would ask for a field's position, and its diagnostics give way to the supervisor's.
      resources.push({ ...plain, at: () => plain.source });
    }
    yield;
  }
  return resources;
}

export async function toPortable(config: CompiledConfig): Promise<PortableConfig> {
  const { hash, contentHash, files, mesh, diagnostics } = config;
  return { hash, contentHash, files, mesh, diagnostics, resources: await runStepsSliced(serialiseSteps(config.resources)) };
}

/**
 * A worker's compile: the closures from the supervisor's read, carrying the supervisor's diagnostics.
 * Its hash differs from `portable.hash` only when a plugin read something else than the supervisor's
 * compile did (a plugin module saved in between): the supervisor then compiles again.
 */
export async function compilePortable(portable: PortableConfig, configPath: string, options: CompileOptions): Promise<CompileResult> {
  const resources = await runStepsSliced(deserialiseSteps(portable.resources));
  const read = { contentHash: portable.contentHash, files: portable.files, mesh: portable.mesh, resources, diagnostics: [] };
  const compiled = await compileRead(read, configPath, options, []);
  if (!compiled.ok) return compiled;
  return { ok: true, config: { ...compiled.config, diagnostics: portable.diagnostics } };
}
