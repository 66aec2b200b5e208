/**
 * Variants of the ingress config (config.ts: the same 106-rule table and hot request) for the
 * `policies` suite. Each variant patches the MeshConfig and appends resources, so the difference to
 * `meshgate-http` is exactly the feature under test:
 *
 * - policies: 50 AuthorizationPolicies on the ingress (root namespace, selector istio: ingressgateway):
 *   10 DENY policies the hot request does not match, 39 ALLOW policies on other hosts, paths, headers
 *   and issuers, and the one that allows the hot request (host + path + method, a JWT principal and a
 *   claim) is the 48th; plus a RequestAuthentication with an inline RS256 JWKS. The load carries a
 *   valid token signed once per run.
 * - rate limit: a RateLimitPolicy on the hot path, keyed by client IP, whose limit is never reached;
 *   backend local or redis.
 * - observability: the access log to a file and 1 % tracing exported to a local OTLP/HTTP sink.
 * - quiet: all three off: access log off, tracing sampling 0 % with no collector, Istio request metrics off.
 * - user plugin: one user plugin that does nothing, scoped to the hot VirtualService's routes (the
 *   route check runs on every request), phase STATS.
 * - full chain: what a public ingress runs on every request at once: the policies variant's 50
 *   AuthorizationPolicies and JWT, the local rate limit, Istio request metrics and the access log to a
 *   file (tracing off); the target serves it over HTTPS.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { stringify } from 'yaml';
import { HOT_HOST, ingressDocuments } from './config.js';
import type { Document, IngressConfigOptions } from './config.js';

export const POLICY_COUNT = 50;
/** 1-based position of the ALLOW policy that matches the hot request (near the end of the list). */
export const HOT_POLICY_POSITION = 48;
const DENY_EVERY = 5;
export const JWT_ISSUER = 'https://issuer.bench.local';
const JWT_KEY_ID = 'bench-rs256';
const JWT_ROLE = 'reader';
const TOKEN_LIFETIME = '2h';
/** Far above what one process can serve in a window: the limiter counts but never refuses. */
export const NEVER_REACHED_LIMIT = 1_000_000_000;
const ROOT_NAMESPACE = 'istio-system';
const INGRESS_SELECTOR = { matchLabels: { istio: 'ingressgateway' } };

export interface BenchJwt {
  /** The public key set, as the RequestAuthentication's inline `jwks` string. */
  readonly jwks: string;
  readonly token: string;
}

const jwtByRun = new Map<string, Promise<BenchJwt>>();

/** One RS256 key pair and one token per run (keyed by the scratch directory). */
export function benchJwt(runKey: string): Promise<BenchJwt> {
  let jwt = jwtByRun.get(runKey);
  if (jwt === undefined) {
    jwt = (async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
      const publicJwk = { ...(await exportJWK(publicKey)), kid: JWT_KEY_ID, alg: 'RS256', use: 'sig' };
      const token = await new SignJWT({ role: JWT_ROLE })
        .setProtectedHeader({ alg: 'RS256', kid: JWT_KEY_ID })
        .setIssuer(JWT_ISSUER)
        .setSubject('bench-client')
        .setIssuedAt()
        .setExpirationTime(TOKEN_LIFETIME)
        .sign(privateKey);
      return { jwks: JSON.stringify({ keys: [publicJwk] }), token };
    })();
    jwtByRun.set(runKey, jwt);
  }
  return jwt;
}

function authorizationPolicy(position: number, action: 'ALLOW' | 'DENY', rules: unknown[]): Document {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: `bench-policy-${String(position).padStart(2, '0')}`, namespace: ROOT_NAMESPACE },
    spec: { selector: INGRESS_SELECTOR, action, rules },
  };
}

const hotAllowRules = [
  {
    from: [{ source: { requestPrincipals: [`${JWT_ISSUER}/*`] } }],
    to: [{ operation: { hosts: [HOT_HOST], methods: ['GET'], paths: ['/api/products/*'] } }],
    when: [{ key: 'request.auth.claims[role]', values: [JWT_ROLE] }],
  },
];

/** Rules of policy `position` that the hot request (`GET api.bench.local/api/products/42`, valid token) does not match. */
function decoyRules(position: number): { action: 'ALLOW' | 'DENY'; rules: unknown[] } {
  if (position % DENY_EVERY === 0) {
    return {
      action: 'DENY',
      rules: [
        { to: [{ operation: { paths: [`/internal/${position}/*`, `/admin/${position}`] } }] },
        { when: [{ key: 'request.headers[x-block]', values: [`block-${position}`] }] },
      ],
    };
  }
  switch (position % 4) {
    case 0:
      return { action: 'ALLOW', rules: [{ to: [{ operation: { hosts: [`svc-${position}.bench.local`, `*.tenant-${position}.bench.local`], methods: ['GET', 'HEAD'] } }] }] };
    case 1:
      return {
        action: 'ALLOW',
        rules: [
          {
            from: [{ source: { requestPrincipals: [`https://partner-${position}.example.com/*`] } }],
            to: [{ operation: { methods: ['POST', 'PUT'], paths: [`/api/orders/${position}/*`] } }],
          },
        ],
      };
    case 2:
      return {
        action: 'ALLOW',
        rules: [{ to: [{ operation: { paths: ['/api/*'] } }], when: [{ key: 'request.headers[x-tenant]', values: [`tenant-${position}`, `tenant-${position}-*`] }] }],
      };
    default:
      return { action: 'ALLOW', rules: [{ to: [{ operation: { hosts: [HOT_HOST], paths: [`/api/users/${position}`, `/api/users/${position}/*`] } }] }] };
  }
}

function authorizationPolicies(): Document[] {
  return Array.from({ length: POLICY_COUNT }, (_, index) => {
    const position = index + 1;
    if (position === HOT_POLICY_POSITION) return authorizationPolicy(position, 'ALLOW', hotAllowRules);
    const { action, rules } = decoyRules(position);
    return authorizationPolicy(position, action, rules);
  });
}

function requestAuthentication(jwks: string): Document {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'bench-jwt', namespace: ROOT_NAMESPACE },
    spec: { selector: INGRESS_SELECTOR, jwtRules: [{ issuer: JWT_ISSUER, jwks }] },
  };
}

function rateLimitPolicy(backend: 'local' | 'redis'): Document {
  return {
    apiVersion: 'meshgate.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: { name: 'bench-limits', namespace: ROOT_NAMESPACE },
    spec: {
      selector: INGRESS_SELECTOR,
      backend,
      rules: [{ match: { hosts: [HOT_HOST], paths: ['/api/*'] }, key: [{ remoteIp: {} }], limits: [{ requests: NEVER_REACHED_LIMIT, per: '1s' }] }],
    },
  };
}

/** The module file the user-plugin variant loads, relative to the config (written beside it by the target). */
export const NOOP_PLUGIN_FILE = 'noop-plugin.js';
export const NOOP_PLUGIN_SOURCE = 'export default { onRequest() {} };\n';
export const NOOP_PLUGIN_NAME = 'noop';

function noopUserPlugin(): Document {
  return {
    apiVersion: 'meshgate.dev/v1alpha1',
    kind: 'Plugin',
    metadata: { name: NOOP_PLUGIN_NAME, namespace: 'default' },
    spec: { url: `./${NOOP_PLUGIN_FILE}`, phase: 'STATS', targetRefs: [{ kind: 'VirtualService', name: 'api' }] },
  };
}

export type IngressVariant =
  | { readonly kind: 'policies'; readonly jwks: string }
  | { readonly kind: 'ratelimit-local' }
  | { readonly kind: 'ratelimit-redis'; readonly redisUrl: string }
  | { readonly kind: 'observability'; readonly accessLogPath: string; readonly otlpEndpoint: string }
  | { readonly kind: 'quiet' }
  | { readonly kind: 'user-plugin' }
  | { readonly kind: 'full-chain'; readonly jwks: string; readonly accessLogPath: string };

function variantPatch(variant: IngressVariant): { meshConfig: Record<string, unknown>; documents: Document[] } {
  switch (variant.kind) {
    case 'policies':
      return { meshConfig: {}, documents: [requestAuthentication(variant.jwks), ...authorizationPolicies()] };
    case 'ratelimit-local':
      return { meshConfig: {}, documents: [rateLimitPolicy('local')] };
    case 'ratelimit-redis':
      return { meshConfig: { redis: { url: variant.redisUrl } }, documents: [rateLimitPolicy('redis')] };
    case 'observability':
      return {
        meshConfig: { accessLog: { enabled: true, path: variant.accessLogPath }, tracing: { samplingPercent: 1, otlpEndpoint: variant.otlpEndpoint } },
        documents: [],
      };
    case 'user-plugin':
      return { meshConfig: {}, documents: [noopUserPlugin()] };
    case 'quiet':
      return { meshConfig: { accessLog: { enabled: false }, tracing: { samplingPercent: 0 }, metrics: { enabled: false } }, documents: [] };
    case 'full-chain':
      return {
        meshConfig: { accessLog: { enabled: true, path: variant.accessLogPath }, tracing: { samplingPercent: 0 } },
        documents: [requestAuthentication(variant.jwks), ...authorizationPolicies(), rateLimitPolicy('local')],
      };
  }
}

/** Writes `<directory>/meshgate-<variant>.yaml`: the ingress table of config.ts plus the variant. */
export async function writeIngressVariantConfig(options: IngressConfigOptions, variant: IngressVariant): Promise<string> {
  const patch = variantPatch(variant);
  const documents = ingressDocuments(options).map((document) => {
    if (document.kind !== 'MeshConfig') return document;
    const spec = document.spec as Record<string, unknown>;
    return { ...document, spec: { ...spec, ...patch.meshConfig } };
  });
  const path = join(options.directory, `meshgate-${variant.kind}.yaml`);
  await writeFile(path, [...documents, ...patch.documents].map((document) => stringify(document)).join('---\n'));
  return path;
}
