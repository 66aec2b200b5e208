/**
 * JSON Web Key Sets: import (public asymmetric keys only, each with the algorithms it may verify) and a
 * small remote cache. Key confusion is closed here: an RSA/EC/OKP key is only ever offered for its own
 * algorithm family, symmetric (`oct`) keys are never loaded, and header tricks (`jku`, `x5u`, embedded
 * `jwk`) are never consulted — keys come only from the configured JWKS.
 */
import { createPublicKey } from 'node:crypto';
import type { KeyObject, JsonWebKey } from 'node:crypto';
import { loadUndiciRequest } from '../../gateway/upstream/undici-core.js';

export interface VerificationKey {
  readonly kid: string | undefined;
  readonly algorithms: readonly string[];
  readonly key: KeyObject;
}

export interface ImportedJwks {
  readonly keys: readonly VerificationKey[];
  readonly hadPrivateKeys: boolean;
}

/** JWK members of private keys; stripped so a private JWK still yields only its public half. */
const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC_ALGORITHMS: Readonly<Record<string, string>> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };

function algorithmsFor(jwk: Record<string, unknown>): string[] {
  let family: string[];
  if (jwk['kty'] === 'RSA') family = RSA_ALGORITHMS;
  else if (jwk['kty'] === 'EC') family = EC_ALGORITHMS[String(jwk['crv'])] === undefined ? [] : [EC_ALGORITHMS[String(jwk['crv'])] as string];
  else if (jwk['kty'] === 'OKP' && jwk['crv'] === 'Ed25519') family = ['EdDSA', 'Ed25519'];
  else family = [];
  // A key pinned to an algorithm is used for that one only, and only if it belongs to the key's family.
  return typeof jwk['alg'] === 'string' ? family.filter((alg) => alg === jwk['alg']) : family;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws when the document is not a JWKS; keys that cannot verify signatures are skipped. */
export function importJwks(document: unknown): ImportedJwks {
  if (!isRecord(document) || !Array.isArray(document['keys'])) throw new Error('not a JSON Web Key Set (no "keys" array)');
  const keys: VerificationKey[] = [];
  let hadPrivateKeys = false;
  for (const jwk of document['keys']) {
    if (!isRecord(jwk) || jwk['use'] === 'enc') continue;
    const algorithms = algorithmsFor(jwk);
    if (algorithms.length === 0) continue;
    if (jwk['d'] !== undefined) hadPrivateKeys = true;
    const publicPart = Object.fromEntries(Object.entries(jwk).filter(([name]) => !PRIVATE_MEMBERS.has(name)));
    let key: KeyObject;
    try {
      key = createPublicKey({ key: publicPart as JsonWebKey, format: 'jwk' });
    } catch {
      continue;
    }
    keys.push({ kid: typeof jwk['kid'] === 'string' ? jwk['kid'] : undefined, algorithms, key });
  }
  return { keys, hadPrivateKeys };
}

/** Keys usable for a token header: same kid when the token names one, and the token's algorithm. */
export function selectKeys(keys: readonly VerificationKey[], kid: string | undefined, alg: string): VerificationKey[] {
  return keys.filter((key) => (kid === undefined || key.kid === kid) && key.algorithms.includes(alg));
}

export interface RemoteJwksSettings {
  readonly timeoutMs: number;
  readonly cacheDurationMs: number;
  readonly minRefreshIntervalMs: number;
  readonly maxBytes: number;
}

/**
 * A remote JWKS: fetched with a timeout, used for `cacheDurationMs`, refreshed in the background after
 * that, and on demand (rate-limited) when a token names an unknown kid. A failed fetch keeps the stale
 * keys: an IdP outage must not log everybody out. `generation` changes whenever the key set does, which
 * invalidates verified-token cache entries.
 */
export class RemoteJwks {
  private keys: readonly VerificationKey[] = [];
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private lastDocument = '';
  private inflight: Promise<void> | null = null;
  generation = 0;
  lastError = '';

  constructor(
    readonly uri: string,
    private readonly settings: RemoteJwksSettings,
  ) {
    // Started with the rule, so the first fetch normally finds undici loaded.
    void loadUndiciRequest();
  }

  get hasKeys(): boolean {
    return this.keys.length > 0;
  }

  /** Current keys; waits for a fetch only when none was ever obtained. */
  async currentKeys(): Promise<readonly VerificationKey[]> {
    const now = Date.now();
    const stale = now - this.fetchedAt > this.settings.cacheDurationMs;
    // Failed fetches are retried at most every minRefreshIntervalMs, so a dead IdP costs no timeout per request.
    if (stale && (this.inflight !== null || now - this.lastAttemptAt >= this.settings.minRefreshIntervalMs)) {
      const refresh = this.refresh();
      if (this.keys.length === 0) await refresh;
    }
    return this.keys;
  }

  /** Called when no key matches a token: fetch again unless we did so very recently. */
  async refreshForUnknownKey(): Promise<boolean> {
    if (Date.now() - this.lastAttemptAt < this.settings.minRefreshIntervalMs) return false;
    const before = this.generation;
    await this.refresh();
    return this.generation !== before;
  }

  refresh(): Promise<void> {
    this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async fetchOnce(): Promise<void> {
    this.lastAttemptAt = Date.now();
    try {
      const undiciRequest = await loadUndiciRequest();
      const response = await undiciRequest(this.uri, {
        method: 'GET',
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.settings.timeoutMs),
        headersTimeout: this.settings.timeoutMs,
        bodyTimeout: this.settings.timeoutMs,
      });
      if (response.statusCode !== 200) {
        await response.body.dump();
        throw new Error(`HTTP ${response.statusCode}`);
      }
      let text = '';
      for await (const chunk of response.body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length > this.settings.maxBytes) {
          response.body.destroy();
          throw new Error(`larger than ${this.settings.maxBytes} bytes`);
        }
      }
      const imported = importJwks(JSON.parse(text) as unknown);
      if (imported.keys.length === 0) throw new Error('no usable public keys');
      this.fetchedAt = Date.now();
      this.lastError = '';
      if (text !== this.lastDocument) {
        this.lastDocument = text;
        this.keys = imported.keys;
        this.generation++;
      }
    } catch (error) {
      this.lastError = error instanceof Error ? error.message : String(error);
    }
  }
}
