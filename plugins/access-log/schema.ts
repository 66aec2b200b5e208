/**
 * Access-log settings. `enabled`, `path` and `format` come from MeshConfig `accessLog`; the bounds
 * below are process options (MeshConfig has no field for them) with defaults sized for forensics, not
 * for replaying a hostile client's payload into our log storage.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const AccessLogLimits = Type.Object(
  {
    maxPathLength: Type.Integer({
      minimum: 16,
      default: 1024,
      description: 'Longest request path written (the query string is never written: it often carries tokens).',
    }),
    maxHeaderValueLength: Type.Integer({
      minimum: 16,
      default: 256,
      description: 'Longest value written for :authority, user-agent and x-forwarded-for.',
    }),
  },
  { additionalProperties: false, description: 'Bounds on client-controlled values in access-log lines.' },
);
export type AccessLogLimits = Static<typeof AccessLogLimits>;

export function accessLogLimits(overrides: Partial<AccessLogLimits> = {}): AccessLogLimits {
  const limits = Value.Default(AccessLogLimits, { ...overrides }) as AccessLogLimits;
  if (!Value.Check(AccessLogLimits, limits)) throw new Error(`invalid access-log limits: ${JSON.stringify(overrides)}`);
  return limits;
}
