/**
 * @peculiar/x509 for the tests: an independent ASN.1 implementation that checks the certificates
 * gateway/identity/ca.ts writes by hand (der.ts), and crafts certificates ca.ts would refuse to issue.
 *
 * @peculiar/x509 resolves its algorithm providers through tsyringe, which refuses to load without the
 * Reflect metadata API (normally the `reflect-metadata` package, not a dependency here). tsyringe only
 * needs define/get/getOwn metadata, so a WeakMap-backed shim is installed BEFORE the library loads —
 * which is why the library is loaded with a dynamic import after the shim rather than a static one.
 */
import { webcrypto } from 'node:crypto';

type MetadataKey = unknown;
type MetadataTarget = object;

interface ReflectMetadataApi {
  defineMetadata?: (key: MetadataKey, value: unknown, target: MetadataTarget) => void;
  getOwnMetadata?: (key: MetadataKey, target: MetadataTarget) => unknown;
  getMetadata?: (key: MetadataKey, target: MetadataTarget) => unknown;
}

function installReflectMetadataShim(): void {
  const reflect = Reflect as unknown as ReflectMetadataApi;
  if (typeof reflect.getMetadata === 'function') return;
  const store = new WeakMap<MetadataTarget, Map<MetadataKey, unknown>>();
  reflect.defineMetadata = (key, value, target) => {
    let entries = store.get(target);
    if (entries === undefined) {
      entries = new Map();
      store.set(target, entries);
    }
    entries.set(key, value);
  };
  reflect.getOwnMetadata = (key, target) => store.get(target)?.get(key);
  reflect.getMetadata = (key, target) => {
    for (let current: unknown = target; typeof current === 'object' || typeof current === 'function'; current = Object.getPrototypeOf(current)) {
      if (current === null) break;
      const value = store.get(current)?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}

installReflectMetadataShim();

export const x509 = await import('@peculiar/x509');
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** ECDSA P-256 with SHA-256: the cheapest handshake on Node (measured). */
export const EC_P256_SHA256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
