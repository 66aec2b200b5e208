/**
 * What a building block's handler needs from the request: the Dapr view of the snapshot the request
 * started on, the block's compiled state, and the body, read with a size limit (the proxy itself never
 * buffers bodies, so its content-type parser leaves the stream untouched).
 */
import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../../pipeline/types.js';
import type { DaprSnapshot } from '../snapshot.js';

/** Dapr's default `--max-body-size` (4 MiB). */
export const DAPR_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** What the Dapr API reads of the core's request context (gateway/proxy/proxy-context.ts): the snapshot the request started on. */
export interface DaprRequestContext extends RequestContext {
  readonly snapshot: { readonly dapr: DaprSnapshot | null };
}

/** The Dapr view of the request's snapshot; only outbound listeners of a sidecar register Dapr routes, so it exists. */
export function daprSnapshotOf(request: FastifyRequest): DaprSnapshot {
  return (request.mesh as DaprRequestContext).snapshot.dapr as DaprSnapshot;
}

export function compiledBlock<T>(request: FastifyRequest, blockName: string): T {
  return daprSnapshotOf(request).blocks.get(blockName) as T;
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
  }
}

/** The whole body; rejects with BodyTooLargeError past `limit` bytes (the connection is then closed after the answer). */
export function readBody(request: FastifyRequest, limit = DAPR_MAX_BODY_BYTES): Promise<Buffer> {
  const raw = request.raw;
  const declared = Number(raw.headers['content-length'] ?? 0);
  if (declared > limit) {
    raw.resume();
    return Promise.reject(new BodyTooLargeError(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        raw.off('data', onData);
        raw.resume();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    raw.on('data', onData);
    raw.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)));
    raw.once('error', reject);
  });
}
