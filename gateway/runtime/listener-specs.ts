/**
 * The listeners a snapshot asks for. Ingress: one per Gateway bind:port. Sidecar: its inbound port
 * (mTLS and, when PeerAuthentication allows, plaintext) and its outbound port on loopback.
 */
import { listenerKey } from '../proxy/listener-spec.js';
import type { ListenerSpec } from '../proxy/listener-spec.js';
import type { Snapshot } from './snapshot.js';

export function listenerSpecs(snapshot: Snapshot): ListenerSpec[] {
  if (snapshot.mode === 'ingress') {
    return snapshot.listenerPlans.map((plan) => {
      const httpsRedirectHosts = plan.protocol === 'http' ? plan.servers.filter((s) => s.httpsRedirect).flatMap((s) => s.hosts.map((h) => h.dnsName)) : [];
      return {
        key: listenerKey('gateway', plan.bind, plan.port, plan.protocol),
        // Only what is fixed at listen time: a plain-HTTP listener routes from the live snapshot, so a
        // change of its servers' hosts must not close it (that refuses connections during the drain).
        fingerprint: plan.protocol === 'https' ? JSON.stringify(plan.servers) : JSON.stringify(httpsRedirectHosts),
        name: `gateway ${plan.key}`,
        direction: 'gateway' as const,
        bind: plan.bind,
        port: plan.port,
        protocol: plan.protocol,
        httpsRedirectHosts,
        gatewayPlan: plan.protocol === 'https' ? plan : null,
      };
    });
  }
  const specs: ListenerSpec[] = [];
  const sidecar = snapshot.sidecar;
  if (sidecar?.inbound != null) {
    const { bind, port } = sidecar.inbound;
    specs.push({
      key: listenerKey('inbound', bind, port, 'mesh'),
      fingerprint: '',
      name: `inbound ${bind}:${port}`,
      direction: 'inbound',
      bind,
      port,
      protocol: 'https',
      httpsRedirectHosts: [],
      gatewayPlan: null,
    });
  }
  if (sidecar?.outbound != null) {
    const { bind, port } = sidecar.outbound;
    specs.push({
      key: listenerKey('outbound', bind, port, 'http'),
      fingerprint: '',
      name: `outbound ${bind}:${port}`,
      direction: 'outbound',
      bind,
      port,
      protocol: 'http',
      httpsRedirectHosts: [],
      gatewayPlan: null,
    });
  }
  return specs;
}
