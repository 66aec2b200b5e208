/**
 * Whether a passthrough target is this sidecar's own outbound listener: a certain loop, refused with
 * OWN_LISTENER (proxy/loop-guard.ts) rather than left to the hop count. Built once per snapshot from
 * the sidecar plan and the proxy's own address.
 */
import type { SidecarPlan } from './sidecar-plan.js';

const LOOPBACK_NAMES = new Set(['localhost', '0.0.0.0', '::', '::1', '0:0:0:0:0:0:0:1', 'ip6-localhost']);

function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || host.startsWith('127.') || host.endsWith('.localhost') || host.startsWith('::ffff:127.');
}

/** `(host, port) => boolean`: whether a passthrough target is this sidecar's outbound listener. Built once per snapshot. */
export function ownOutboundMatcher(sidecar: SidecarPlan | null, ownAddress: string | undefined): (host: string, port: number) => boolean {
  const outbound = sidecar?.outbound;
  if (outbound == null) return () => false;
  const addresses = new Set([outbound.bind.toLowerCase(), ...(ownAddress === undefined ? [] : [ownAddress.toLowerCase()])]);
  return (host, port) => port === outbound.port && (isLoopback(host) || addresses.has(host));
}
