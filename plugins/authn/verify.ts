/**
 * Verifies one token against the providers that read its location (docs/policies.md#requestauthentication-jwt). Messages are
 * Envoy jwt_authn's, so clients and runbooks written for Istio keep working. The algorithm is never taken
 * on trust: it must be one the selected key allows (so no `none`, no HS256-with-an-RSA-key confusion).
 */
import type * as Jose from 'jose';
import type { JWTPayload, ProtectedHeaderParameters } from 'jose';
import type { CompiledAuthn, CompiledJwtRule } from './compile.js';
import { selectKeys } from './jwks.js';
import type { VerificationKey } from './jwks.js';
import type { FoundToken } from './locations.js';
import type { VerifiedToken } from './token-cache.js';

export type VerifyOutcome =
  | { readonly ok: true; readonly verified: VerifiedToken }
  | { readonly ok: false; readonly status: 401 | 403; readonly message: string };

export const JWT_MESSAGES = {
  badFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  badHeader: 'Jwt header is an invalid JSON',
  badPayload: 'Jwt payload is an invalid JSON',
  badAlg: 'Jwt header [alg] is not supported',
  tooLarge: 'Jwt is too large',
  unknownIssuer: 'Jwt issuer is not configured',
  noKey: "Jwks doesn't have key to match kid or alg from Jwt",
  fetchFailed: 'Jwks remote fetch is failed',
  expired: 'Jwt is expired',
  notYetValid: 'Jwt not yet valid',
  verificationFails: 'Jwt verification fails',
  audience: 'Audiences in Jwt are not allowed',
} as const;

const fail = (message: string, status: 401 | 403 = 401): VerifyOutcome => ({ ok: false, status, message });

let jose: Promise<typeof Jose> | null = null;

/**
 * jose is imported when a configuration first has JWT rules (see the plugin's `activated`), not by
 * every proxy at start: most sidecars never verify a token and would hold it for nothing.
 */
export function loadJose(): Promise<typeof Jose> {
  jose ??= import('jose');
  return jose;
}

function errorCode(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : '';
}

function audienceAllowed(payload: JWTPayload, audiences: readonly string[]): boolean {
  if (audiences.length === 0) return true;
  const aud = payload.aud;
  const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  return list.some((value) => audiences.includes(value));
}

async function keysFor(rule: CompiledJwtRule, header: ProtectedHeaderParameters, alg: string): Promise<VerificationKey[] | string> {
  if (rule.remote === null) return selectKeys(rule.inlineKeys, header.kid, alg);
  let keys = selectKeys(await rule.remote.currentKeys(), header.kid, alg);
  if (keys.length === 0 && (await rule.remote.refreshForUnknownKey())) keys = selectKeys(await rule.remote.currentKeys(), header.kid, alg);
  if (keys.length === 0 && !rule.remote.hasKeys) return JWT_MESSAGES.fetchFailed;
  return keys;
}

async function verifyWithRule(
  { jwtVerify }: typeof Jose,
  compiled: CompiledAuthn,
  rule: CompiledJwtRule,
  token: string,
  header: ProtectedHeaderParameters,
  alg: string,
  nowMs: number,
): Promise<{ readonly payload: JWTPayload } | { readonly failure: VerifyOutcome }> {
  const keys = await keysFor(rule, header, alg);
  if (typeof keys === 'string') return { failure: fail(keys) };
  if (keys.length === 0) return { failure: fail(JWT_MESSAGES.noKey) };
  for (const { key } of keys) {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [alg],
        clockTolerance: compiled.options.clockSkewSeconds,
        currentDate: new Date(nowMs),
        ...(rule.issuer === undefined ? {} : { issuer: rule.issuer }),
      });
      return { payload };
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ERR_JWT_EXPIRED') return { failure: fail(JWT_MESSAGES.expired) };
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
        const claim = (error as { claim?: unknown }).claim;
        return { failure: fail(claim === 'nbf' ? JWT_MESSAGES.notYetValid : JWT_MESSAGES.verificationFails) };
      }
    }
  }
  return { failure: fail(JWT_MESSAGES.verificationFails) };
}

/** The earlier verification of this token at this location, still valid at `nowMs`; null = verify it. */
export function cachedVerification(compiled: CompiledAuthn, found: FoundToken, nowMs: number): VerifiedToken | null {
  return compiled.cache.get(found.token, found.location.id, nowMs);
}

export async function verifyToken(compiled: CompiledAuthn, found: FoundToken, nowMs: number): Promise<VerifyOutcome> {
  const { token, location } = found;
  if (token.length > compiled.options.maxTokenBytes) return fail(JWT_MESSAGES.tooLarge);
  const cached = compiled.cache.get(token, location.id, nowMs);
  if (cached !== null) return { ok: true, verified: cached };

  if (token.split('.').length !== 3) return fail(JWT_MESSAGES.badFormat);
  const library = await loadJose();
  const { decodeJwt, decodeProtectedHeader } = library;
  let header: ProtectedHeaderParameters;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return fail(JWT_MESSAGES.badHeader);
  }
  try {
    unverified = decodeJwt(token);
  } catch {
    return fail(JWT_MESSAGES.badPayload);
  }
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === 'none' || alg.startsWith('HS')) return fail(alg === undefined ? JWT_MESSAGES.badAlg : JWT_MESSAGES.noKey);

  const iss = unverified.iss;
  const candidates: number[] = [];
  compiled.rules.forEach((rule, index) => {
    if (rule.locationIds.has(location.id) && (rule.issuer === undefined || rule.issuer === iss)) candidates.push(index);
  });
  if (candidates.length === 0) return fail(JWT_MESSAGES.unknownIssuer);

  let firstFailure: VerifyOutcome | null = null;
  for (const ruleIndex of candidates) {
    const rule = compiled.rules[ruleIndex] as CompiledJwtRule;
    const result = await verifyWithRule(library, compiled, rule, token, header, alg, nowMs);
    if ('failure' in result) {
      firstFailure ??= result.failure;
      continue;
    }
    const payload = result.payload;
    if (!audienceAllowed(payload, rule.audiences)) {
      firstFailure ??= fail(JWT_MESSAGES.audience, 403);
      continue;
    }
    const verified: VerifiedToken = { ruleIndex, claims: payload, principal: `${payload.iss ?? ''}/${payload.sub ?? ''}` };
    const skewMs = compiled.options.clockSkewSeconds * 1000;
    const expiresAtMs = typeof payload.exp === 'number' ? payload.exp * 1000 + skewMs : nowMs + compiled.options.jwksCacheDurationSeconds * 1000;
    compiled.cache.set(token, location.id, verified, expiresAtMs, rule.remote);
    return { ok: true, verified };
  }
  return firstFailure ?? fail(JWT_MESSAGES.verificationFails);
}
