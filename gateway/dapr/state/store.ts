/**
 * The interface both state stores implement (Redis and in-memory), with Dapr's concurrency rules:
 * an ETag is the item's integer version; with an ETag and `first-write` (or no concurrency given) a
 * write succeeds only when it matches; `last-write` ignores it; an item written with `first-write`
 * also refuses later writes that carry no ETag. Keys here are store keys, already prefixed (keys.ts).
 */
export interface StoredItem {
  /** The stored bytes: the JSON text of the saved value. */
  readonly data: Buffer;
  readonly etag: string;
}

export interface SetOperation {
  readonly kind: 'set';
  readonly key: string;
  readonly data: Buffer;
  /** The ETag to check, or null (none given, or `last-write`). */
  readonly etag: string | null;
  readonly firstWrite: boolean;
  /** Seconds to live: > 0 expires, ≤ 0 persists, null leaves the item's expiry as it is. */
  readonly ttlSeconds: number | null;
}

export interface DeleteOperation {
  readonly kind: 'delete';
  readonly key: string;
  readonly etag: string | null;
}

export type StateOperation = SetOperation | DeleteOperation;

/** The ETag given does not match the stored one (HTTP 409). */
export class EtagMismatchError extends Error {
  override readonly name = 'EtagMismatchError';
}
/** The ETag given cannot be one this store issued (HTTP 400). */
export class EtagInvalidError extends Error {
  override readonly name = 'EtagInvalidError';
}
/** The backend did not answer (down, timed out): HTTP 500 with Dapr's error, at once. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

export interface StateStore {
  get(key: string): Promise<StoredItem | null>;
  /** One entry per key, in order; an entry is an Error when that key alone failed. */
  bulkGet(keys: readonly string[]): Promise<(StoredItem | null | Error)[]>;
  set(operation: SetOperation): Promise<void>;
  delete(operation: DeleteOperation): Promise<void>;
  /** Applies every operation in one MULTI/EXEC (Redis) or synchronously (memory); no rollback of earlier ones on a later failure. */
  transact(operations: readonly StateOperation[]): Promise<void>;
}

/** Versions are positive integers; anything else cannot match and is refused before reaching the store. */
export function checkEtag(etag: string | null): void {
  if (etag !== null && !/^\d{1,15}$/.test(etag)) throw new EtagInvalidError(`invalid etag "${etag}": this store's ETags are integers`);
}
