/** `security.istio.io` PeerAuthentication (docs/policies.md#peerauthentication-mtls-modes): what the inbound side accepts (mTLS mode). */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { WorkloadSelector, stringEnum, strictObject } from './common.js';

const mtlsMode = (description: string) =>
  stringEnum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'], description, 'UNSET');

export const MutualTLS = strictObject(
  { mode: Type.Optional(mtlsMode('UNSET inherits from the parent scope (PERMISSIVE at the top).')) },
  'Mutual TLS setting.',
);
export type MutualTLS = Static<typeof MutualTLS>;

export const PeerAuthenticationSpec = strictObject(
  {
    selector: Type.Optional(WorkloadSelector),
    mtls: Type.Optional(MutualTLS),
    portLevelMtls: Type.Optional(
      Type.Record(Type.String({ pattern: '^[0-9]+$' }), MutualTLS, {
        additionalProperties: false,
        description: 'Workload port → mTLS mode; requires a selector.',
      }),
    ),
  },
  'PeerAuthentication: mTLS mode of inbound traffic.',
);
export type PeerAuthenticationSpec = Static<typeof PeerAuthenticationSpec>;
