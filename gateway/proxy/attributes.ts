/**
 * Turns the raw request into the normalised attributes that routing, every policy and the forwarded
 * request share — one normaliser, so that what a policy checked is exactly what the upstream receives.
 */
import type { FastifyRequest } from 'fastify';
import { TLSSocket } from 'node:tls';
import { daprInvocation } from '../dapr/invocation.js';
import { normalizeAuthority, trustedClientIp, validateMethod } from '../http/normalize.js';
import { isRawHeaderName } from '../http/raw-headers.js';
import { peerIdentityOf } from '../identity/peer.js';
import type { ListenerSpec } from '../listeners/listener-spec.js';
import type { RequestAttributes } from '../pipeline/types.js';
import type { Snapshot } from '../snapshot/snapshot.js';

export type AttributesResult =
  | { readonly ok: true; readonly attrs: RequestAttributes }
  | { readonly ok: false; readonly reason: string; readonly status: 400 | 431 };

function stripMappedPrefix(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/** Node keeps only the first of duplicate Host headers in `req.headers`; a second one is a smuggling attempt. */
function hasDuplicateHost(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (isRawHeaderName(rawHeaders[i] as string, 'host')) {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}

export function computeAttributes(request: FastifyRequest, listener: ListenerSpec, snapshot: Snapshot): AttributesResult {
  const raw = request.raw;
  if (!validateMethod(raw.method ?? '')) return { ok: false, reason: 'invalid_method', status: 400 };
  const refused = snapshot.guardRequest(raw);
  if (refused !== null) return { ok: false, reason: refused.reason, status: refused.status };
  if (hasDuplicateHost(raw.rawHeaders)) return { ok: false, reason: 'duplicate_host_header', status: 400 };
  const normalized = snapshot.normalize(raw.url ?? '/');
  if (!normalized.ok) return { ok: false, reason: normalized.reason, status: 400 };
  const invoked = listener.direction === 'outbound' ? daprInvocation(normalized.path, raw.headers['dapr-app-id']) : null;
  // An app id no service has keeps its own name as host; the Dapr API answers it before routing matters.
  const target =
    invoked === null ? normalized : { ...normalized, path: invoked.path, absoluteAuthority: snapshot.dapr?.invokeHost(invoked.appId) ?? invoked.appId };
  // HTTP/2: `:authority` wins over a `host` header (RFC 9113 §8.3.1), for routing, policies and forwarding alike.
  const hostHeader = (raw.headers[':authority'] as string | undefined) ?? raw.headers.host ?? '';
  const authority = normalizeAuthority(target.absoluteAuthority ?? hostHeader);
  if (authority === null) return { ok: false, reason: 'invalid_authority', status: 400 };
  if (authority.host === '' && listener.direction !== 'inbound') return { ok: false, reason: 'missing_host', status: 400 };
  const socket = raw.socket;
  const sourceIp = stripMappedPrefix(socket.remoteAddress ?? '');
  const tls = socket instanceof TLSSocket;
  return {
    ok: true,
    attrs: {
      method: raw.method as string,
      authority: authority.authority,
      host: authority.host,
      path: target.path,
      query: target.query,
      scheme: tls ? 'https' : 'http',
      sourceIp,
      remoteIp: trustedClientIp(raw.headers['x-forwarded-for'], sourceIp, snapshot.mesh.numTrustedProxies),
      destinationIp: stripMappedPrefix(socket.localAddress ?? ''),
      destinationPort: socket.localPort ?? listener.port,
      sni: tls ? ((socket as TLSSocket).servername || '') : '',
      peer: tls ? peerIdentityOf(socket, snapshot.mesh.trustDomain) : null,
    },
  };
}
