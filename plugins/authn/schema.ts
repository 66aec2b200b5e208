/**
 * The authn plugin's own settings (not part of Istio's RequestAuthentication): verification tolerances,
 * the verified-token cache and how remote JWKS are fetched. Validated once when the plugin is created.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const AuthnOptions = Type.Object(
  {
    clockSkewSeconds: Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 60,
      description: 'Tolerance applied to `exp` and `nbf` (Envoy jwt_authn default: 60 s).',
    }),
    verifiedTokenCacheSize: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      default: 10_000,
      description: 'Entries in the LRU cache of verified tokens (kept until `exp`, dropped on JWKS rotation); 0 disables it.',
    }),
    maxTokenBytes: Type.Integer({
      minimum: 256,
      maximum: 65_536,
      default: 8192,
      description: 'Tokens longer than this are rejected (401) before any parsing.',
    }),
    jwksCacheDurationSeconds: Type.Integer({
      minimum: 1,
      default: 300,
      description: 'How long a fetched remote JWKS is used before it is refreshed in the background (Envoy: 5 min).',
    }),
    jwksMinRefreshIntervalSeconds: Type.Integer({
      minimum: 0,
      default: 30,
      description: 'Minimum time between two fetches of one JWKS triggered by tokens with an unknown `kid` (limits what forged kids can cost).',
    }),
    jwksMaxBytes: Type.Integer({
      minimum: 1024,
      default: 1_048_576,
      description: 'A remote JWKS response larger than this is treated as a fetch failure.',
    }),
  },
  { additionalProperties: false, description: 'RequestAuthentication (JWT) plugin settings.' },
);
export type AuthnOptions = Static<typeof AuthnOptions>;

export function resolveAuthnOptions(input: Partial<AuthnOptions> = {}): AuthnOptions {
  const options = Value.Default(AuthnOptions, structuredClone(input));
  if (!Value.Check(AuthnOptions, options)) {
    const first = Value.Errors(AuthnOptions, options).First();
    throw new Error(`invalid authn options: ${first === undefined ? 'unknown error' : `${first.path} ${first.message}`}`);
  }
  return options;
}
