/**
 * Traffic mirroring (docs/routing.md#mirroring): a fire-and-forget copy with `-shadow` appended to the host
 * (before the port). The mirror's response is discarded and its failure ignored: it can never slow or
 * fail the client. Requests with a body are not mirrored, because the body is streamed once upstream.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { CompiledRoute } from '../router/types.js';
import { forward } from '../upstream/forward.js';
import type { ProxyRequestContext } from './proxy-context.js';

const NO_RETRIES = Object.freeze({
  attempts: 0,
  perTryTimeoutMs: 0,
  retryOn: new Set<string>(),
  retriableStatusCodes: new Set<number>(),
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  retryIgnorePreviousHosts: false,
});

const MIRROR_TIMEOUT_MS = 30_000;

export function shadowAuthority(authority: string): string {
  const portAt = authority.lastIndexOf(':');
  if (portAt > 0 && !authority.endsWith(']') && /^\d+$/.test(authority.slice(portAt + 1))) {
    return `${authority.slice(0, portAt)}-shadow${authority.slice(portAt)}`;
  }
  return `${authority}-shadow`;
}

export function mirrorRequest(ctx: ProxyRequestContext, route: CompiledRoute, method: string, path: string, headers: OutgoingHttpHeaders): void {
  for (const mirror of route.mirrors) {
    if (mirror.fraction <= 0 || Math.random() >= mirror.fraction) continue;
    const cluster = ctx.snapshot.clusters.get(mirror.destination.host, mirror.destination.port, mirror.destination.subset);
    if (cluster === undefined) continue;
    const shadowHeaders = { ...headers, host: shadowAuthority(String(headers.host ?? cluster.host)) };
    forward(cluster, {
      method,
      path,
      headers: shadowHeaders as Readonly<Record<string, string | readonly string[] | undefined>>,
      body: null,
      retry: NO_RETRIES,
      timeoutMs: MIRROR_TIMEOUT_MS,
      sourceIp: ctx.attrs.remoteIp,
      signal: null,
    }).then(
      (outcome) => {
        if (outcome.kind === 'response') outcome.body.resume();
      },
      () => undefined,
    );
  }
}
