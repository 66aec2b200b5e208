/**
 * `networking.istio.io` Sidecar. In meshgate it describes one sidecar proxy: its inbound listener and
 * the local application it fronts (`ingress[].defaultEndpoint`), and its outbound listener (`egress`).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { LabelsSelector, PortNumber, described, stringEnum, stringList, strictObject } from './common.js';
import { ConnectionPoolSettings } from './destination-rule.js';
import { ServerTLSSettings } from './gateway.js';
import { Destination } from './virtual-service.js';

export const SidecarPort = strictObject(
  {
    number: described(PortNumber, 'Port number.'),
    protocol: Type.Optional(Type.String({ description: 'HTTP, HTTPS, GRPC, HTTP2, TCP, TLS.' })),
    name: Type.Optional(Type.String({ description: 'Port name.' })),
    targetPort: Type.Optional(described(PortNumber, 'Unused (compatibility).')),
  },
  'A sidecar listener port.',
);
export type SidecarPort = Static<typeof SidecarPort>;

export const IstioIngressListener = strictObject(
  {
    port: SidecarPort,
    bind: Type.Optional(Type.String({ description: 'Listen IP (default 0.0.0.0).' })),
    captureMode: Type.Optional(stringEnum(['DEFAULT', 'IPTABLES', 'NONE'], 'Traffic capture mode (meshgate listens explicitly).')),
    defaultEndpoint: Type.Optional(Type.String({ description: 'Local application: `127.0.0.1:<port>`, `0.0.0.0:<port>` or `unix://…`.' })),
    tls: Type.Optional(described(ServerTLSSettings, 'TLS terminated for non-mesh clients (mesh mTLS is governed by PeerAuthentication).')),
    connectionPool: Type.Optional(described(ConnectionPoolSettings, 'Limits on connections to the local application.')),
  },
  'Inbound listener in front of the local application.',
);
export type IstioIngressListener = Static<typeof IstioIngressListener>;

export const IstioEgressListener = strictObject(
  {
    port: Type.Optional(SidecarPort),
    bind: Type.Optional(Type.String({ description: 'Listen IP (default 127.0.0.1 in meshgate).' })),
    captureMode: Type.Optional(stringEnum(['DEFAULT', 'IPTABLES', 'NONE'], 'Traffic capture mode.')),
    hosts: stringList('`namespace/host` entries reachable through this listener (`*/*` = everything).'),
  },
  'Outbound listener the application calls.',
);
export type IstioEgressListener = Static<typeof IstioEgressListener>;

export const SidecarSpec = strictObject(
  {
    workloadSelector: Type.Optional(described(LabelsSelector, 'The workload(s) this Sidecar describes.')),
    ingress: Type.Optional(Type.Array(IstioIngressListener, { description: 'Inbound listeners.' })),
    egress: Type.Optional(Type.Array(IstioEgressListener, { description: 'Outbound listeners.' })),
    inboundConnectionPool: Type.Optional(described(ConnectionPoolSettings, 'Default limits on connections to the local application.')),
    outboundTrafficPolicy: Type.Optional(
      strictObject(
        {
          mode: Type.Optional(stringEnum(['REGISTRY_ONLY', 'ALLOW_ANY'], 'Unknown destinations: allowed (passthrough) or blocked.')),
          egressProxy: Type.Optional(described(Destination, 'Send unknown traffic to this egress proxy (ALLOW_ANY only).')),
        },
        'Outbound policy for hosts outside the registry.',
      ),
    ),
  },
  'Sidecar: inbound and outbound listeners of a sidecar proxy.',
);
export type SidecarSpec = Static<typeof SidecarSpec>;
