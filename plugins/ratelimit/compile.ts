/**
 * RateLimitPolicy resources → the immutable per-snapshot structure the request hook walks. Everything
 * that does not depend on the request is decided here: which policies apply to this workload, the
 * matchers, the key readers, the limit order, the stores (from the registry), the replies and the
 * header items.
 */
import { diagnosticOf } from '../../gateway/config/diagnostics.js';
import type { Diagnostic, FieldPath, Resource } from '../../gateway/config/resource.js';
import { durationProblem, parseDuration } from '../../gateway/config/duration.js';
import type { MeshConfigSpec } from '../../gateway/config/kinds/mesh-config.js';
import type { CompileInput, LocalReply } from '../../gateway/pipeline/types.js';
import { policyAppliesTo } from '../../gateway/policy/selector.js';
import * as codes from './diagnostics.js';
import { compileRequestMatch } from './match.js';
import type { RequestPredicate } from './match.js';
import { sharedRedisConnection } from './redis-client.js';
import type { RedisSettings } from './redis-client.js';
import { LimiterSession } from './registry.js';
import { compileKey } from './request-key.js';
import { PolicyDecisions } from './stats.js';
import type { KeyReader } from './request-key.js';
import {
  DEFAULT_BACKEND,
  DEFAULT_COST,
  DEFAULT_FAILURE_MODE,
  DEFAULT_LIMITED_STATUS,
  DEFAULT_MISSING_KEY,
  RATE_LIMIT_API_VERSION,
  RATE_LIMIT_KIND,
} from './schema.js';
import type { Limit, RateLimitPolicySpec, RateLimitRule } from './schema.js';
import { createMemoryStore } from './shared-store.js';
import { createRedisStore } from './store.js';
import type { RateLimitStore } from './store.js';

export const RATE_LIMIT_PLUGIN_NAME = 'ratelimit';
const DEFAULT_REDIS_KEY_PREFIX = 'meshgate:';
const DEFAULT_REDIS_CONNECT_TIMEOUT = '1s';
const DEFAULT_REDIS_COMMAND_TIMEOUT = '250ms';

export interface CompiledLimit {
  readonly requests: number;
  readonly windowSeconds: number;
  readonly cost: number;
  readonly store: RateLimitStore;
  /** Structured-field string naming this limit in `RateLimit-Policy` / `RateLimit`, e.g. `"shop/api#0.1"`. */
  readonly headerName: string;
  /** Its `RateLimit-Policy` item, e.g. `"shop/api#0.1";q=100;w=1`. */
  readonly policyItem: string;
}

export interface CompiledRule {
  readonly matches: RequestPredicate;
  readonly keyOf: KeyReader;
  /** Shortest window first: a request refused by the per-second limit does not use up the hourly one. */
  readonly limits: readonly CompiledLimit[];
}

export interface CompiledPolicy {
  /** `<ns>/<name>` */
  readonly id: string;
  readonly rules: readonly CompiledRule[];
  readonly headersOnAllowed: boolean;
  readonly decisions: PolicyDecisions;
  readonly limitedReply: LocalReply;
  /** failureMode closed and the backend cannot decide. */
  readonly unavailableReply: LocalReply;
}

export interface CompiledRateLimits {
  /** Policies that apply to this workload, in document order. */
  readonly policies: readonly CompiledPolicy[];
}

function quoteSfString(text: string): string {
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

function redisSettings(resources: readonly Resource[]): (RedisSettings & { readonly keyPrefix: string }) | null {
  const meshConfig = resources.find((r) => r.kind === 'MeshConfig' && r.apiVersion === RATE_LIMIT_API_VERSION);
  const redis = (meshConfig?.spec as Partial<MeshConfigSpec> | undefined)?.redis;
  if (redis === undefined) return null;
  const connectTimeout = redis.connectTimeout ?? DEFAULT_REDIS_CONNECT_TIMEOUT;
  const commandTimeout = redis.commandTimeout ?? DEFAULT_REDIS_COMMAND_TIMEOUT;
  return {
    url: redis.url,
    keyPrefix: redis.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX,
    connectTimeoutMs: durationProblem(connectTimeout) === null ? parseDuration(connectTimeout) : parseDuration(DEFAULT_REDIS_CONNECT_TIMEOUT),
    commandTimeoutMs: durationProblem(commandTimeout) === null ? parseDuration(commandTimeout) : parseDuration(DEFAULT_REDIS_COMMAND_TIMEOUT),
  };
}

class PolicyCompiler {
  private valid = true;

  constructor(
    private readonly resource: Resource<RateLimitPolicySpec>,
    private readonly diagnostics: Diagnostic[],
    private readonly redis: ReturnType<typeof redisSettings>,
    private readonly session: LimiterSession,
    private readonly clock: () => number,
  ) {}

  private report(code: codes.RateLimitDiagnosticCode, message: string, path: FieldPath): void {
    const { metadata } = this.resource;
    const field = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
    const diagnostic = diagnosticOf(codes.rateLimitDefinition(code), message, this.resource.at(path), {
      kind: RATE_LIMIT_KIND,
      namespace: metadata.namespace,
      name: metadata.name,
      field,
    });
    if (diagnostic.severity === 'error') this.valid = false;
    this.diagnostics.push(diagnostic);
  }


  compile(): CompiledPolicy | null {
    const { spec, metadata } = this.resource;
    const id = `${metadata.namespace}/${metadata.name}`;
    const backend = spec.backend ?? DEFAULT_BACKEND;
    const failureMode = spec.failureMode ?? DEFAULT_FAILURE_MODE;
    if (backend === 'redis' && this.redis === null) {
      this.report(codes.MG_RL_REDIS_NOT_CONFIGURED, codes.rateLimitMessages.redisNotConfigured(), ['spec', 'backend']);
    }
    const rules = spec.rules.map((rule, ruleIndex) => this.compileRule(id, rule, ruleIndex, backend, failureMode));
    if (!this.valid) return null;
    const details = `[${id}]`;
    return {
      id,
      rules: rules.filter((rule): rule is CompiledRule => rule !== null),
      headersOnAllowed: spec.response?.headers ?? false,
      decisions: new PolicyDecisions(id),
      limitedReply: {
        status: spec.response?.status ?? DEFAULT_LIMITED_STATUS,
        flag: 'RL',
        details: `rate_limited${details}`,
        message: `rate limited by ${id}`,
      },
      unavailableReply: {
        status: 503,
        flag: 'RLSE',
        details: `rate_limit_backend_unavailable${details}`,
        message: `rate limit backend unavailable (${id} fails closed)`,
      },
    };
  }

  private checkPatterns(rule: RateLimitRule, ruleIndex: number): void {
    const match = rule.match ?? {};
    const lists: [string, readonly string[] | undefined][] = [
      ['hosts', match.hosts],
      ['notHosts', match.notHosts],
      ['paths', match.paths],
      ['notPaths', match.notPaths],
      ['methods', match.methods],
      ['notMethods', match.notMethods],
      ...Object.entries(match.headers ?? {}).map(([name, values]): [string, readonly string[]] => [`headers.${name}`, values]),
    ];
    for (const [field, values] of lists) {
      const emptyAt = values?.indexOf('') ?? -1;
      if (emptyAt !== -1) {
        const path = ['spec', 'rules', ruleIndex, 'match', ...field.split(/\.(.*)/s).filter((p) => p !== ''), emptyAt];
        this.report(codes.MG_RL_EMPTY_PATTERN, codes.rateLimitMessages.emptyPattern(), path);
      }
    }
  }

  private compileRule(
    policyId: string,
    rule: RateLimitRule,
    ruleIndex: number,
    backend: 'local' | 'redis',
    failureMode: 'open' | 'closed',
  ): CompiledRule | null {
    this.checkPatterns(rule, ruleIndex);
    const seenWindows = new Map<number, number>();
    const limits: CompiledLimit[] = [];
    const ordered = rule.limits
      .map((limit, limitIndex) => ({ limit, limitIndex }))
      .sort((a, b) => a.limit.requests - b.limit.requests);
    for (const { limit, limitIndex } of ordered) {
      const windowSeconds = this.checkLimit(limit, ['spec', 'rules', ruleIndex, 'limits', limitIndex], backend, failureMode);
      if (windowSeconds === null) continue;
      const kept = seenWindows.get(windowSeconds);
      if (kept !== undefined) {
        const message = codes.rateLimitMessages.duplicateWindow(limit.per, kept);
        this.report(codes.MG_RL_DUPLICATE_WINDOW, message, ['spec', 'rules', ruleIndex, 'limits', limitIndex, 'per']);
        continue;
      }
      seenWindows.set(windowSeconds, limit.requests);
      limits.push(this.compileLimit(policyId, ruleIndex, limitIndex, limit, windowSeconds, backend, failureMode));
    }
    if (!this.valid) return null;
    limits.sort((a, b) => a.windowSeconds - b.windowSeconds);
    return {
      matches: compileRequestMatch(rule.match),
      keyOf: compileKey(rule.key ?? [], (rule.missingKey ?? DEFAULT_MISSING_KEY) === 'skip'),
      limits,
    };
  }

  /** Returns the window in seconds, or null after reporting why the limit is unusable. */
  private checkLimit(limit: Limit, path: FieldPath, backend: string, failureMode: string): number | null {
    const problem = durationProblem(limit.per);
    const windowMs = problem === null ? parseDuration(limit.per) : NaN;
    const usable = Number.isInteger(windowMs / 1000) && windowMs >= 1000;
    if (!usable) {
      this.report(codes.MG_RL_WINDOW_NOT_WHOLE_SECONDS, codes.rateLimitMessages.windowNotWholeSeconds(limit.per, problem), [...path, 'per']);
    }
    const cost = limit.cost ?? DEFAULT_COST;
    if (cost > limit.requests) {
      this.report(codes.MG_RL_COST_EXCEEDS_REQUESTS, codes.rateLimitMessages.costExceedsRequests(cost, limit.requests), [...path, 'cost']);
    }
    if (limit.insuranceLimit !== undefined && (backend !== 'redis' || failureMode !== 'open')) {
      const message = codes.rateLimitMessages.insuranceWithoutRedisOpen(backend, failureMode);
      this.report(codes.MG_RL_INSURANCE_WITHOUT_REDIS_OPEN, message, [...path, 'insuranceLimit']);
    }
    return usable ? windowMs / 1000 : null;
  }

  private compileLimit(
    policyId: string,
    ruleIndex: number,
    limitIndex: number,
    limit: Limit,
    windowSeconds: number,
    backend: 'local' | 'redis',
    failureMode: 'open' | 'closed',
  ): CompiledLimit {
    const window = { requests: limit.requests, windowSeconds };
    const counterName = `${policyId}:${ruleIndex}:${limit.requests}/${windowSeconds}s`;
    const redis = this.redis;
    const insurance = failureMode === 'open' ? (limit.insuranceLimit ?? limit.requests) : null;
    const identity =
      backend === 'redis' && redis !== null
        ? JSON.stringify(['redis', counterName, redis.url, redis.keyPrefix, insurance])
        : JSON.stringify(['local', counterName]);
    const store = this.session.acquire(identity, () =>
      backend === 'redis' && redis !== null
        ? createRedisStore(window, {
            connection: () => sharedRedisConnection(redis),
            keyPrefix: `${redis.keyPrefix}rl:${counterName}`,
            insuranceRequests: insurance,
          })
        : createMemoryStore(window, identity, this.clock),
    );
    const headerName = quoteSfString(`${policyId}#${ruleIndex}.${limitIndex}`);
    return {
      requests: limit.requests,
      windowSeconds,
      cost: limit.cost ?? DEFAULT_COST,
      store,
      headerName,
      policyItem: `${headerName};q=${limit.requests};w=${windowSeconds}`,
    };
  }
}

/** `clock`: the time of the in-process (`backend: local`) windows; Redis windows are timed by Redis. */
export function compileRateLimits(input: CompileInput, clock: () => number): CompiledRateLimits {
  const redis = redisSettings(input.resources);
  const session = new LimiterSession();
  const policies: CompiledPolicy[] = [];
  const own = input.resources
    .filter((r): r is Resource<RateLimitPolicySpec> => r.kind === RATE_LIMIT_KIND && r.apiVersion === RATE_LIMIT_API_VERSION)
    .sort((a, b) => a.source.order - b.source.order);
  for (const resource of own) {
    const applies = policyAppliesTo(resource.metadata.namespace, resource.spec.selector, input.workload, input.rootNamespace);
    // Every policy is checked so `validate` reports all problems; only those that apply keep stores in the registry.
    const compiled = new PolicyCompiler(resource, input.diagnostics, redis, applies ? session : new LimiterSession(), clock).compile();
    if (compiled !== null && applies) policies.push(compiled);
  }
  session.commit();
  return { policies };
}
