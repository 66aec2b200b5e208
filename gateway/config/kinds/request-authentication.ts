/** `security.istio.io` RequestAuthentication (docs/policies.md#requestauthentication-jwt): JWT validation of inbound requests. */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { PolicyTargetReference, WorkloadSelector, durationString, stringList, strictObject } from './common.js';

export const JWTHeader = strictObject(
  {
    name: Type.String({ minLength: 1, description: 'Header carrying the token.' }),
    prefix: Type.Optional(Type.String({ description: 'Required prefix, e.g. `"Bearer "` (with the space).' })),
  },
  'A header token location.',
);
export type JWTHeader = Static<typeof JWTHeader>;

export const ClaimToHeader = strictObject(
  {
    header: Type.String({ pattern: '^[-_A-Za-z0-9]+$', description: 'Header to set upstream.' }),
    claim: Type.String({ minLength: 1, description: 'Claim to copy (nested `a.b.c`).' }),
  },
  'Copy a claim into a request header.',
);
export type ClaimToHeader = Static<typeof ClaimToHeader>;

export const JWTRule = strictObject(
  {
    issuer: Type.Optional(Type.String({ description: 'Expected `iss`. Required unless `jwksUri` is set.' })),
    audiences: Type.Optional(stringList('Accepted `aud` values; empty ⇒ not checked.')),
    jwksUri: Type.Optional(Type.String({ description: 'URL of the JWKS (http/https).' })),
    jwks: Type.Optional(Type.String({ description: 'Inline JWKS JSON.' })),
    fromHeaders: Type.Optional(Type.Array(JWTHeader, { description: 'Header locations (replace the defaults).' })),
    fromParams: Type.Optional(stringList('Query parameter locations.')),
    fromCookies: Type.Optional(stringList('Cookie locations.')),
    outputPayloadToHeader: Type.Optional(Type.String({ description: 'Forward the base64url payload in this header.' })),
    forwardOriginalToken: Type.Optional(Type.Boolean({ description: 'Keep the token header upstream (default false: removed).' })),
    outputClaimToHeaders: Type.Optional(Type.Array(ClaimToHeader, { description: 'Claims copied into headers.' })),
    timeout: Type.Optional(durationString('JWKS fetch timeout (default 5s).')),
    spaceDelimitedClaims: Type.Optional(stringList('Claims split on spaces for matching (scope, permission always).')),
  },
  'A JWT provider.',
);
export type JWTRule = Static<typeof JWTRule>;

export const RequestAuthenticationSpec = strictObject(
  {
    selector: Type.Optional(WorkloadSelector),
    targetRef: Type.Optional(PolicyTargetReference),
    targetRefs: Type.Optional(Type.Array(PolicyTargetReference, { description: 'Attachment targets (not used by meshgate yet).' })),
    jwtRules: Type.Optional(Type.Array(JWTRule, { maxItems: 4096, description: 'JWT providers.' })),
  },
  'RequestAuthentication: which JWTs are accepted.',
);
export type RequestAuthenticationSpec = Static<typeof RequestAuthenticationSpec>;
