/** `networking.istio.io` WorkloadEntry (docs/routing.md#serviceentry-and-workloadentry): one endpoint of the registry, standalone or inline. */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { stringMap, strictObject } from './common.js';

export const WorkloadEntrySpec = strictObject(
  {
    address: Type.Optional(Type.String({ description: 'IP, DNS name (DNS resolution) or `unix:///path`. Empty ⇒ `network` required.' })),
    ports: Type.Optional(
      Type.Record(Type.String(), Type.Integer({ minimum: 1, maximum: 65535 }), {
        description: 'Service port name → endpoint port (beats ServicePort targetPort).',
      }),
    ),
    labels: Type.Optional(stringMap('Endpoint labels (DestinationRule subsets, workload selectors).')),
    network: Type.Optional(Type.String({ description: 'Network identifier.' })),
    locality: Type.Optional(Type.String({ description: '`region/zone/subzone`.' })),
    weight: Type.Optional(Type.Integer({ minimum: 0, description: 'LB weight; 0/unset ⇒ 1.' })),
    serviceAccount: Type.Optional(Type.String({ description: 'Service account (identity) of the workload.' })),
  },
  'WorkloadEntry: an endpoint.',
);
export type WorkloadEntrySpec = Static<typeof WorkloadEntrySpec>;
