/**
 * RequestAuthentication plugin (docs/policies.md#requestauthentication-jwt). Runs before authz: no token ⇒ anonymous (authz
 * decides whether that is enough); a bad token ⇒ 401 (403 for audience) with `www-authenticate`.
 * On success `request.mesh.auth` holds `<iss>/<sub>` and the claims, and the forwarded request is
 * rewritten: token header removed unless `forwardOriginalToken`, payload/claim headers set.
 */
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { isValidHeaderValue } from '../../gateway/http/header-value.js';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import type { CompileInput, MeshPlugin } from '../../gateway/pipeline/types.js';
import { compileAuthn } from './compile.js';
import type { CompiledAuthn, CompiledJwtRule } from './compile.js';
import { extractToken } from './locations.js';
import type { FoundToken } from './locations.js';
import { resolveAuthnOptions } from './schema.js';
import type { AuthnOptions } from './schema.js';
import { cachedVerification, loadJose, verifyToken } from './verify.js';
import type { VerifiedToken } from './token-cache.js';

export const AUTHN_PLUGIN_NAME = 'authn';

function isCorsPreflight(request: FastifyRequest): boolean {
  return request.method === 'OPTIONS' && request.headers.origin !== undefined && request.headers['access-control-request-method'] !== undefined;
}

function reject(request: FastifyRequest, reply: FastifyReply, status: 401 | 403, message: string): FastifyReply {
  const attrs = request.mesh.attrs;
  const realm = `${attrs.scheme}://${attrs.authority}${attrs.path}`;
  return sendLocalReply(
    request,
    reply,
    { status, flag: '', details: `jwt_authn_access_denied{${message}}`, message },
    { 'www-authenticate': `Bearer realm="${realm.replace(/["\\]/g, '')}", error="invalid_token"` },
  );
}

function claimHeaderValue(claims: Readonly<Record<string, unknown>>, path: readonly string[]): string | null {
  let value: unknown = claims;
  for (const name of path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    value = (value as Record<string, unknown>)[name];
  }
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isInteger(value)) || typeof value === 'boolean') return String(value);
  return null;
}

/** Rewrites the forwarded headers; returns the claim header whose value cannot be sent, or null. */
function rewriteForwardedRequest(request: FastifyRequest, rule: CompiledJwtRule, found: FoundToken, claims: Readonly<Record<string, unknown>>): string | null {
  for (const { header, claimPath } of rule.claimHeaders) {
    const value = claimHeaderValue(claims, claimPath);
    if (value !== null && !isValidHeaderValue(value)) return header;
  }
  // Cleared rather than deleted (here and below): a delete turns node's header object into a slow
  // dictionary for every later step; the proxy step forwards no header whose value is undefined.
  if (!rule.forwardOriginalToken && found.location.kind === 'header') request.headers[found.location.name] = undefined;
  if (rule.outputPayloadToHeader !== null) request.headers[rule.outputPayloadToHeader] = found.token.split('.')[1] ?? '';
  for (const { header, claimPath } of rule.claimHeaders) {
    const value = claimHeaderValue(claims, claimPath);
    if (value !== null) request.headers[header] = value;
  }
  return null;
}

function accept(request: FastifyRequest, reply: FastifyReply, compiled: CompiledAuthn, found: FoundToken, verified: VerifiedToken): void {
  request.mesh.auth = { principal: verified.principal, claims: verified.claims };
  const unsendable = rewriteForwardedRequest(request, compiled.rules[verified.ruleIndex] as CompiledJwtRule, found, verified.claims);
  if (unsendable === null) return;
  // A valid token whose claim holds CR, LF, NUL or another control: forwarding it would split or break the
  // upstream request, so the request is refused with the header named rather than failing upstream (5xx).
  const message = `JWT claim for header ${unsendable} holds characters a header value cannot carry (CR, LF, NUL or another control)`;
  request.log.info({ authn: { reason: message } }, 'JWT claim cannot be forwarded');
  sendLocalReply(request, reply, { status: 400, flag: 'DPE', details: `jwt_claim_header_invalid{${unsendable}}`, message });
}

async function verifyAndAccept(request: FastifyRequest, reply: FastifyReply, compiled: CompiledAuthn, found: FoundToken): Promise<void> {
  const outcome = await verifyToken(compiled, found, Date.now());
  if (!outcome.ok) {
    request.log.info({ authn: { reason: outcome.message, location: found.location.id } }, 'JWT rejected');
    reject(request, reply, outcome.status, outcome.message);
    return;
  }
  accept(request, reply, compiled, found, outcome.verified);
}

/** The token to verify, or null when the request is done with (no token, a preflight, or answered). */
function tokenToVerify(request: FastifyRequest, reply: FastifyReply, compiled: CompiledAuthn): FoundToken | null {
  // Claim headers are ours to write: a client-sent copy would be a forged identity.
  for (const header of compiled.outputHeaders) if (request.headers[header] !== undefined) request.headers[header] = undefined;
  if (isCorsPreflight(request)) return null;
  const extraction = extractToken(request, compiled.locations, request.mesh.attrs.query);
  if (!extraction.ok) {
    reject(request, reply, 401, extraction.message);
    return null;
  }
  return extraction.token;
}

/**
 * Synchronous unless a token has to be verified: a request without a token, and a token already in
 * the verified cache (the usual repeat client), pay no promise nor microtask turn.
 */
function authenticateHook(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const compiled = request.mesh.pluginState<CompiledAuthn>(AUTHN_PLUGIN_NAME);
  if (compiled.rules.length === 0) {
    done();
    return;
  }
  let found: FoundToken | null;
  try {
    found = tokenToVerify(request, reply, compiled);
    if (found !== null) {
      const cached = cachedVerification(compiled, found, Date.now());
      if (cached !== null) {
        accept(request, reply, compiled, found, cached);
        found = null;
      }
    }
  } catch (error) {
    done(error instanceof Error ? error : new Error(String(error)));
    return;
  }
  if (found === null) {
    if (!reply.sent) done();
    return;
  }
  verifyAndAccept(request, reply, compiled, found).then(
    () => {
      if (!reply.sent) done();
    },
    (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
  );
}

export function createAuthnPlugin(options: Partial<AuthnOptions> = {}): MeshPlugin<CompiledAuthn> {
  const resolved = resolveAuthnOptions(options);
  return {
    name: AUTHN_PLUGIN_NAME,
    compile: (input: CompileInput) => compileAuthn(input, resolved),
    inboundOnly: true,
    // Loaded as soon as a configuration needs it, so the first token does not wait for the import.
    activated: (compiled) => {
      if ((compiled as CompiledAuthn).rules.length > 0) void loadJose();
    },
    register: fp(
      async (app) => {
        app.addHook('onRequest', authenticateHook);
      },
      { name: 'meshgate-authn' },
    ),
  };
}

export const authnPlugin = createAuthnPlugin();
