/** `networking.istio.io` ServiceEntry (docs/routing.md#serviceentry-and-workloadentry): hosts of the service registry. */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { ExportTo, LabelsSelector, described, stringEnum, stringList, strictObject } from './common.js';
import { WorkloadEntrySpec } from './workload-entry.js';

export const ServicePort = strictObject(
  {
    number: Type.Integer({ minimum: 1, maximum: 65535, description: 'Service port, unique within the entry.' }),
    protocol: Type.Optional(Type.String({ description: 'HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS.' })),
    name: Type.String({ minLength: 1, description: 'Port name (referenced by endpoint `ports` maps).' }),
    targetPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Endpoint port (default: number).' })),
  },
  'A port of the service.',
);
export type ServicePort = Static<typeof ServicePort>;

export const ServiceEntrySpec = strictObject(
  {
    hosts: Type.Array(Type.String(), { minItems: 1, maxItems: 256, description: 'Hosts (wildcard prefix allowed, bare `*` not).' }),
    addresses: Type.Optional(stringList('VIPs / CIDRs.')),
    ports: Type.Optional(Type.Array(ServicePort, { description: 'Ports of the service.' })),
    location: Type.Optional(stringEnum(['MESH_EXTERNAL', 'MESH_INTERNAL'], 'Inside or outside the mesh (default MESH_EXTERNAL).', 'MESH_EXTERNAL')),
    resolution: Type.Optional(
      stringEnum(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'], 'How endpoints are found (default NONE).', 'NONE'),
    ),
    endpoints: Type.Optional(Type.Array(WorkloadEntrySpec, { maxItems: 4096, description: 'Inline endpoints.' })),
    workloadSelector: Type.Optional(described(LabelsSelector, 'Select WorkloadEntries of the same namespace (MESH_INTERNAL).')),
    exportTo: Type.Optional(ExportTo),
    subjectAltNames: Type.Optional(stringList('SANs accepted on the upstream server certificate.')),
  },
  'ServiceEntry: hosts and endpoints of the registry.',
);
export type ServiceEntrySpec = Static<typeof ServiceEntrySpec>;
