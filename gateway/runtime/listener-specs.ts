/**
 * The listeners a snapshot asks for. Ingress: one per Gateway bind:port. Sidecar: one per ingress port
 * (mTLS and, when PeerAuthentication allows, plaintext) and one per egress port, HTTP or opaque TCP
 * by the port's protocol.
 */
import { parseDuration } from '../config/duration.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import { listenerKey } from '../listeners/listener-spec.js';
import type { ClientConnectionSettings, ListenerSpec } from '../listeners/listener-spec.js';
import type { Snapshot } from '../snapshot/snapshot.js';

export function clientConnectionSettings(mesh: MeshConfigSpec): ClientConnectionSettings {
  const settings = mesh.connections;
  return {
    requestHeadersTimeoutMs: parseDuration(settings.requestHeadersTimeout),
    idleTimeoutMs: parseDuration(settings.idleTimeout),
    upgrades: [...new Set(settings.upgrades.map((token) => token.toLowerCase()))],
    http2MaxConcurrentStreams: settings.http2MaxConcurrentStreams,
    http2MaxPrematureResets: settings.http2MaxPrematureResets,
  };
}

export function listenerSpecs(snapshot: Snapshot): ListenerSpec[] {
  const connections = clientConnectionSettings(snapshot.mesh);
  // Fixed when a listener opens: a change re-opens the listeners.
  const connectionsKey = JSON.stringify(connections);
  if (snapshot.mode === 'ingress') {
    return snapshot.listenerPlans.map((plan) => {
      const terminatesTls = plan.protocol === 'https' || plan.protocol === 'tls';
      const httpsRedirectHosts = plan.protocol === 'http' ? plan.servers.filter((s) => s.httpsRedirect).flatMap((s) => s.hosts.map((h) => h.dnsName)) : [];
      return {
        key: listenerKey('gateway', plan.bind, plan.port, plan.protocol),
        // Only what is fixed at listen time: a plain-HTTP listener routes from the live snapshot, so a
        // change of its servers' hosts must not close it (that refuses connections during the drain).
        fingerprint: (terminatesTls ? JSON.stringify(plan.servers) : JSON.stringify(httpsRedirectHosts)) + connectionsKey,
        name: `gateway ${plan.key}`,
        direction: 'gateway' as const,
        bind: plan.bind,
        port: plan.port,
        protocol: plan.protocol,
        httpsRedirectHosts,
        gatewayPlan: terminatesTls ? plan : null,
        connections,
      };
    });
  }
  const specs: ListenerSpec[] = [];
  const sidecar = snapshot.sidecar;
  for (const { bind, port, kind } of sidecar?.ingress ?? []) {
    specs.push({
      key: listenerKey('inbound', bind, port, kind === 'tcp' ? 'tcp' : 'mesh'),
      fingerprint: connectionsKey,
      name: `inbound ${bind}:${port}`,
      direction: 'inbound',
      bind,
      port,
      protocol: kind === 'tcp' ? 'tcp' : 'https',
      httpsRedirectHosts: [],
      gatewayPlan: null,
      connections,
    });
  }
  for (const { bind, port, kind, sni } of sidecar?.egress ?? []) {
    const protocol = kind === 'http' ? 'http' : sni ? 'passthrough' : 'tcp';
    specs.push({
      key: listenerKey('outbound', bind, port, protocol),
      fingerprint: connectionsKey,
      name: `outbound ${bind}:${port}`,
      direction: 'outbound',
      bind,
      port,
      protocol,
      httpsRedirectHosts: [],
      gatewayPlan: null,
      connections,
    });
  }
  return specs;
}
