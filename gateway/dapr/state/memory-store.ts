/**
 * `state.in-memory`: Dapr's in-memory store, with the same versions, concurrency and TTL rules as the
 * Redis store. One store per (namespace, app id, component name) lives for the process, so a config
 * reload keeps its data; expiry is checked on access against an injectable clock.
 */
import { EtagMismatchError, checkEtag } from './store.js';
import type { DeleteOperation, SetOperation, StateOperation, StateStore, StoredItem } from './store.js';

interface Entry {
  readonly data: Buffer;
  readonly version: number;
  readonly firstWrite: boolean;
  /** Epoch ms after which the entry is gone; null: never. */
  readonly expiresAt: number | null;
}

export class MemoryStateStore implements StateStore {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry?.expiresAt != null && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  get(key: string): Promise<StoredItem | null> {
    const entry = this.live(key);
    return Promise.resolve(entry === undefined ? null : { data: entry.data, etag: String(entry.version) });
  }

  bulkGet(keys: readonly string[]): Promise<(StoredItem | null)[]> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  private check(operation: StateOperation): void {
    checkEtag(operation.etag);
    const entry = this.live(operation.key);
    if (entry === undefined) return;
    const given = operation.etag ?? '0';
    // The Redis scripts' rule, so both stores answer the same.
    const allowed = String(entry.version) === given || (given === '0' && (operation.kind === 'delete' || !entry.firstWrite));
    if (!allowed) throw new EtagMismatchError(`possible etag mismatch for key ${operation.key}`);
  }

  private apply(operation: StateOperation): void {
    if (operation.kind === 'delete') {
      this.entries.delete(operation.key);
      return;
    }
    const previous = this.live(operation.key);
    const ttl = operation.ttlSeconds;
    const expiresAt = ttl === null ? (previous?.expiresAt ?? null) : ttl > 0 ? this.now() + ttl * 1000 : null;
    this.entries.set(operation.key, {
      data: operation.data,
      version: (previous?.version ?? 0) + 1,
      firstWrite: (previous?.firstWrite ?? false) || operation.firstWrite,
      expiresAt,
    });
  }

  set(operation: SetOperation): Promise<void> {
    return this.transact([operation]);
  }

  delete(operation: DeleteOperation): Promise<void> {
    return this.transact([operation]);
  }

  transact(operations: readonly StateOperation[]): Promise<void> {
    try {
      for (const operation of operations) {
        this.check(operation);
        this.apply(operation);
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }
}
