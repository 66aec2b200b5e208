/**
 * Bounded LRU of verified tokens, so a repeated token costs a map lookup instead of a signature check
 * (~60–120 µs with jose, performance-baseline §2.3). An entry lives until the token's `exp` and is
 * ignored as soon as the JWKS it was verified with changes generation (key rotation / revocation).
 */
import type { JWTPayload } from 'jose';
import type { RemoteJwks } from './jwks.js';

export interface VerifiedToken {
  /** Index of the rule in CompiledAuthn.rules that accepted the token. */
  readonly ruleIndex: number;
  readonly claims: JWTPayload;
  readonly principal: string;
}

interface Entry {
  readonly verified: VerifiedToken;
  readonly expiresAtMs: number;
  readonly jwks: RemoteJwks | null;
  readonly generation: number;
}

export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity: number) {}

  get(key: string, nowMs: number): VerifiedToken | null {
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    if (nowMs >= entry.expiresAtMs || (entry.jwks !== null && entry.jwks.generation !== entry.generation)) {
      this.entries.delete(key);
      return null;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.verified;
  }

  set(key: string, verified: VerifiedToken, expiresAtMs: number, jwks: RemoteJwks | null): void {
    if (this.capacity === 0) return;
    this.entries.delete(key);
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { verified, expiresAtMs, jwks, generation: jwks?.generation ?? 0 });
  }

  get size(): number {
    return this.entries.size;
  }
}
