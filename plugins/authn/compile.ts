/**
 * RequestAuthentication → one merged list of JWT providers for this workload (docs/policies.md#requestauthentication-jwt:
 * root namespace + namespace + selector, unlike PeerAuthentication everything is merged). Inline JWKS are
 * imported here; remote ones start fetching here so the first request rarely waits.
 */
import type { RequestAuthenticationSpec, JWTRule } from '../../gateway/config/kinds/request-authentication.js';
import { parseDuration } from '../../gateway/config/duration.js';
import { makeDiagnostic } from '../../gateway/config/diagnostics.js';
import type { DiagnosticCode } from '../../gateway/config/diagnostics.js';
import { policyAppliesTo } from '../../gateway/policy/selector.js';
import type { CompileInput } from '../../gateway/pipeline/types.js';
import { RemoteJwks, importJwks } from './jwks.js';
import type { VerificationKey } from './jwks.js';
import { DEFAULT_LOCATIONS, cookieLocation, headerLocation, paramLocation, planTokenLocations } from './locations.js';
import type { LocationStep, TokenLocation } from './locations.js';
import type { AuthnOptions } from './schema.js';
import { VerifiedTokenCache } from './token-cache.js';

const DEFAULT_JWKS_TIMEOUT_MS = 5_000;

export interface CompiledJwtRule {
  /** `<ns>/<name>.jwtRules[i]`, for logs. */
  readonly id: string;
  /** Undefined = any issuer (a rule with only `jwksUri`). */
  readonly issuer: string | undefined;
  readonly audiences: readonly string[];
  readonly locationIds: ReadonlySet<string>;
  readonly inlineKeys: readonly VerificationKey[];
  readonly remote: RemoteJwks | null;
  readonly forwardOriginalToken: boolean;
  readonly outputPayloadToHeader: string | null;
  readonly claimHeaders: readonly { readonly header: string; readonly claimPath: readonly string[] }[];
}

export interface CompiledAuthn {
  readonly rules: readonly CompiledJwtRule[];
  /** How to scan every location any rule reads (deduplicated), in configuration order. */
  readonly locations: readonly LocationStep[];
  /** Headers this plugin writes upstream: always removed from the incoming request first (no forged claims). */
  readonly outputHeaders: readonly string[];
  readonly options: AuthnOptions;
  readonly cache: VerifiedTokenCache;
}

function ruleLocations(rule: JWTRule): TokenLocation[] {
  const explicit = [
    ...(rule.fromHeaders ?? []).map((h) => headerLocation(h.name, h.prefix ?? '')),
    ...(rule.fromParams ?? []).map(paramLocation),
    ...(rule.fromCookies ?? []).map(cookieLocation),
  ];
  return explicit.length === 0 ? [...DEFAULT_LOCATIONS] : explicit;
}

export function compileAuthn(input: CompileInput, options: AuthnOptions): CompiledAuthn {
  const rules: CompiledJwtRule[] = [];
  const locations = new Map<string, TokenLocation>();
  const outputHeaders = new Set<string>();

  for (const resource of input.resources) {
    if (resource.kind !== 'RequestAuthentication') continue;
    const spec = resource.spec as RequestAuthenticationSpec;
    const { namespace, name } = resource.metadata;
    if (!policyAppliesTo(namespace, spec.selector, input.workload, input.rootNamespace)) continue;
    (spec.jwtRules ?? []).forEach((rule, index) => {
      const field = ['spec', 'jwtRules', index] as const;
      const report = (code: DiagnosticCode, message: string): void => {
        input.diagnostics.push(
          makeDiagnostic(code, message, resource.at(field), { kind: resource.kind, namespace, name, field: `spec.jwtRules[${index}]` }),
        );
      };
      if ((rule.issuer ?? '') === '' && (rule.jwksUri ?? '') === '') return report('MG0310', 'a jwtRule needs an issuer or a jwksUri');
      let inlineKeys: readonly VerificationKey[] = [];
      if (rule.jwks !== undefined) {
        try {
          const imported = importJwks(JSON.parse(rule.jwks) as unknown);
          inlineKeys = imported.keys;
          if (imported.hadPrivateKeys) report('MG0311', 'inline jwks contains private key material');
          if (inlineKeys.length === 0) report('MG0310', 'inline jwks has no usable public signing key (RSA, EC P-256/384/521, Ed25519)');
        } catch (error) {
          return report('MG0310', `inline jwks is not a JSON Web Key Set: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      let remote: RemoteJwks | null = null;
      if (rule.jwks === undefined && rule.jwksUri !== undefined) {
        if (!/^https?:\/\/[^/]/.test(rule.jwksUri)) return report('MG0310', `jwksUri is not an http(s) URL: ${rule.jwksUri}`);
        remote = new RemoteJwks(rule.jwksUri, {
          timeoutMs: rule.timeout === undefined ? DEFAULT_JWKS_TIMEOUT_MS : parseDuration(rule.timeout),
          cacheDurationMs: options.jwksCacheDurationSeconds * 1000,
          minRefreshIntervalMs: options.jwksMinRefreshIntervalSeconds * 1000,
          maxBytes: options.jwksMaxBytes,
        });
        void remote.refresh();
      }
      const headers = new Set<string>();
      for (const { header } of rule.outputClaimToHeaders ?? []) {
        if (headers.has(header.toLowerCase())) report('MG0312', `claim header ${header} appears twice`);
        headers.add(header.toLowerCase());
      }
      const own = ruleLocations(rule);
      for (const location of own) locations.set(location.id, location);
      const payloadHeader = rule.outputPayloadToHeader === undefined ? null : rule.outputPayloadToHeader.toLowerCase();
      if (payloadHeader !== null) outputHeaders.add(payloadHeader);
      for (const header of headers) outputHeaders.add(header);
      rules.push({
        id: `${namespace}/${name}.jwtRules[${index}]`,
        issuer: rule.issuer === '' ? undefined : rule.issuer,
        audiences: rule.audiences ?? [],
        locationIds: new Set(own.map((l) => l.id)),
        inlineKeys,
        remote,
        forwardOriginalToken: rule.forwardOriginalToken === true,
        outputPayloadToHeader: payloadHeader,
        claimHeaders: (rule.outputClaimToHeaders ?? []).map((c) => ({ header: c.header.toLowerCase(), claimPath: c.claim.split('.') })),
      });
      return undefined;
    });
  }
  return {
    rules,
    locations: planTokenLocations([...locations.values()]),
    outputHeaders: [...outputHeaders],
    options,
    cache: new VerifiedTokenCache(options.verifiedTokenCacheSize),
  };
}
