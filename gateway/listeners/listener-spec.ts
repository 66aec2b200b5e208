/**
 * A listener the proxy opens, independent of mode: the ingress derives them from Gateway servers,
 * a sidecar from its Sidecar resource. The same proxy app serves all of them; only `direction`
 * (and so the route source) differs.
 */
import type { ListenerDirection, ListenerView } from '../pipeline/types.js';
import type { ListenerPlan } from './plan.js';

/** MeshConfig `connections`, resolved once per snapshot into plain numbers. */
export interface ClientConnectionSettings {
  /** 0 = no limit. */
  readonly requestHeadersTimeoutMs: number;
  /** 0 = never. */
  readonly idleTimeoutMs: number;
  /** Lower-case Upgrade tokens that are proxied. */
  readonly upgrades: readonly string[];
  readonly http2MaxConcurrentStreams: number;
  readonly http2MaxPrematureResets: number;
}

export interface ListenerSpec extends ListenerView {
  /** Changes when anything that is fixed at listen time changes (TLS servers, redirect hosts). */
  readonly fingerprint: string;
  readonly bind: string;
  /** `tcp`, `passthrough` (SNI-routed TLS) and `tls` (TLS terminated here) are proxied as opaque TCP by gateway/tcp/. */
  readonly protocol: 'http' | 'https' | 'tcp' | 'passthrough' | 'tls';
  /** Hosts (exact, `*.suffix` or `*`) whose plain-HTTP requests get a 301 to https (Gateway `tls.httpsRedirect`). */
  readonly httpsRedirectHosts: readonly string[];
  /** Gateway listeners that terminate TLS (HTTPS, TLS SIMPLE/MUTUAL): the servers whose certificates it serves by SNI. */
  readonly gatewayPlan: ListenerPlan | null;
  readonly connections: ClientConnectionSettings;
}

export function listenerKey(direction: ListenerDirection, bind: string, port: number, protocol: string): string {
  return `${direction}:${bind}:${port}:${protocol}`;
}

/** Gateway host matching for listener-level decisions: exact, `*.suffix` (never the bare suffix), or `*`. */
export function hostListed(hosts: readonly string[], host: string): boolean {
  for (const candidate of hosts) {
    if (candidate === '*' || candidate === host) return true;
    if (candidate.startsWith('*.') && host.endsWith(candidate.slice(1)) && host.length > candidate.length - 1) return true;
  }
  return false;
}
