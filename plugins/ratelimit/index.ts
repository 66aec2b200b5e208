/**
 * The rate limit plugin: RateLimitPolicy (`meshgate.dev/v1alpha1`) compiled per snapshot, enforced in
 * a `preHandler` hook — after the core has resolved the route and authentication has validated the
 * JWT (keys may use both), before anything is forwarded.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import { conditionalHook } from '../../gateway/pipeline/hooks.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { RATE_LIMIT_PLUGIN_NAME, compileRateLimits } from './compile.js';
import type { CompiledRateLimits } from './compile.js';
import { RATE_LIMIT_DIAGNOSTICS } from './diagnostics.js';
import { enforceRateLimits } from './enforce.js';
import type { Verdict } from './enforce.js';
import { admittedHeaders, limitedHeaders } from './headers.js';
import { closeSharedRedisClients } from './redis-client.js';
import { releaseAllLimiters } from './registry.js';
import { RATE_LIMIT_GROUP, RATE_LIMIT_KIND, RATE_LIMIT_VERSION, RateLimitPolicySpec } from './schema.js';
import { setRateLimitLogger } from './stats.js';

export { RATE_LIMIT_PLUGIN_NAME } from './compile.js';
export type { CompiledRateLimits } from './compile.js';
export { rateLimitStats } from './stats.js';
export type { RateLimitStats, RateLimitDecision, BackendState } from './stats.js';

/** Gateway apps alive in this process; the shared Redis client and the limiters go with the last one. */
let openApps = 0;

function hasPolicies(request: FastifyRequest): boolean {
  const compiled = request.mesh.pluginState<CompiledRateLimits | undefined>(RATE_LIMIT_PLUGIN_NAME);
  return compiled !== undefined && compiled.policies.length > 0;
}

function enforce(request: FastifyRequest, reply: FastifyReply): Promise<void> | void {
  const verdict = enforceRateLimits(request, request.mesh.pluginState<CompiledRateLimits>(RATE_LIMIT_PLUGIN_NAME));
  if (verdict instanceof Promise) return verdict.then((settled) => answer(request, reply, settled));
  answer(request, reply, verdict);
}

function answer(request: FastifyRequest, reply: FastifyReply, verdict: Verdict): void {
  if (verdict.kind === 'allowed') {
    if (verdict.reported.length > 0) reply.headers(admittedHeaders(verdict.reported));
  } else if (verdict.kind === 'limited') {
    sendLocalReply(request, reply, verdict.policy.limitedReply, limitedHeaders(verdict.limit, verdict.resetMs));
  } else {
    sendLocalReply(request, reply, verdict.policy.unavailableReply);
  }
}

const register: FastifyPluginAsync = fp(
  async (fastify) => {
    setRateLimitLogger(fastify.log.child({ plugin: RATE_LIMIT_PLUGIN_NAME }));
    openApps++;
    fastify.addHook('onClose', async () => {
      openApps--;
      if (openApps > 0) return;
      releaseAllLimiters();
      await closeSharedRedisClients();
    });
    fastify.addHook('preHandler', conditionalHook(hasPolicies, enforce));
  },
  { name: 'meshgate-ratelimit', fastify: '5.x' },
);

export interface RateLimitPluginOptions {
  /** Clock of the in-process (`backend: local`) windows (default Date.now); tests advance their own instead of sleeping. */
  readonly now?: () => number;
}

export function createRateLimitPlugin(options: RateLimitPluginOptions = {}): MeshPlugin<CompiledRateLimits> {
  const clock = options.now ?? Date.now;
  return {
    name: RATE_LIMIT_PLUGIN_NAME,
    kinds: [{ group: RATE_LIMIT_GROUP, versions: [RATE_LIMIT_VERSION], kind: RATE_LIMIT_KIND, spec: RateLimitPolicySpec }],
    diagnostics: RATE_LIMIT_DIAGNOSTICS,
    compile: (input) => compileRateLimits(input, clock),
    register,
  };
}

export const rateLimitPlugin: MeshPlugin<CompiledRateLimits> = createRateLimitPlugin();
