/**
 * AuthorizationPolicy plugin (docs/policies.md#authorizationpolicy). Runs after RequestAuthentication (it reads
 * `request.mesh.auth`) and before routing, as Envoy's RBAC filter does. Every denial names the policy and
 * rule that decided, in the log, in `request.mesh.localReply.details` and (debug headers) in the response.
 */
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import { conditionalHook } from '../../gateway/pipeline/hooks.js';
import type { ConnectionAttributes, ConnectionDenial, MeshPlugin } from '../../gateway/pipeline/types.js';
import { authzDecisionSeries, recordAuthzDecision } from './decision-metrics.js';
import type { PreparedCounter } from '../../gateway/metrics/registry.js';
import { compileAuthz } from './compile.js';
import type { CompiledAuthz } from './compile.js';
import type { RbacDecision } from './compiled-policy.js';
import { denialDetails, evaluateRbac, evaluateShadow, matchingAuditPolicies, matchingCustomPolicy } from './evaluate.js';
import { explainRequest } from './explain.js';
import { authzConnectionView, authzRequestFrom } from './request-view.js';
import type { AuthzRequest } from './request-view.js';

export const AUTHZ_PLUGIN_NAME = 'authz';

export const RBAC_DENIED_MESSAGE = 'RBAC: access denied';

function hasPolicies(compiled: CompiledAuthz): boolean {
  return (
    compiled.custom.length + compiled.deny.policies.length + compiled.allow.policies.length + compiled.audit.length + compiled.dryRun.length > 0
  );
}

async function runCustom(
  compiled: CompiledAuthz,
  view: AuthzRequest,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply | null> {
  const policy = matchingCustomPolicy(compiled, view);
  if (policy?.extAuthz == null) return null;
  const query = request.mesh.attrs.query;
  const result = await policy.extAuthz.check({
    method: view.method,
    authority: view.authority,
    pathWithQuery: query === '' ? view.path : `${view.path}?${query}`,
    headers: request.headers,
  });
  if (result.allowed) {
    Object.assign(request.headers, result.upstreamHeaders);
    return null;
  }
  const details = result.error ? `ext_authz_error[${policy.id}]` : `ext_authz_denied[${policy.id}]`;
  request.log.info({ authz: { decision: 'deny', action: 'CUSTOM', policy: policy.id, provider: policy.extAuthz.providerName } }, 'external authorizer denied the request');
  recordAuthzDecision(policy.id, 'CUSTOM', 'denied');
  return sendLocalReply(
    request,
    reply,
    { status: result.status, flag: 'UAEX', details, message: result.body },
    result.downstreamHeaders,
  );
}

function logObservers(compiled: CompiledAuthz, view: AuthzRequest, request: FastifyRequest, enforcedAllowed: boolean): void {
  if (compiled.audit.length > 0) {
    const audited = matchingAuditPolicies(compiled, view);
    if (audited.length > 0) request.log.info({ authz: { audit: audited } }, 'request matched AUDIT policies');
  }
  const shadow = evaluateShadow(compiled, view);
  if (shadow !== null) {
    request.log.info(
      { authz: { dryRun: true, wouldAllow: shadow.allowed, policy: shadow.policy, rule: shadow.ruleIndex, enforcedAllowed } },
      shadow.allowed === enforcedAllowed ? 'dry-run policies agree with the enforced decision' : 'dry-run policies would change the decision',
    );
  }
}

/** RBAC decisions are built once (one per rule, two without a matching policy), so each keeps its metric series. */
const decisionSeries = new WeakMap<RbacDecision, PreparedCounter>();

function countDecision(decision: RbacDecision): void {
  let series = decisionSeries.get(decision);
  if (series === undefined) {
    // A matched DENY policy decides as DENY; otherwise the ALLOW set decided (`none`: no ALLOW policy exists, or none matched).
    const action = decision.policy !== null && !decision.allowed ? 'DENY' : 'ALLOW';
    series = authzDecisionSeries(decision.policy ?? 'none', action, decision.allowed ? 'allowed' : 'denied');
    decisionSeries.set(decision, series);
  }
  series.inc();
}

/** Answers a denied request; false when the RBAC decision allows it (the pipeline goes on). */
function enforceRbac(compiled: CompiledAuthz, view: AuthzRequest, request: FastifyRequest, reply: FastifyReply): boolean {
  const decision = evaluateRbac(compiled.deny, compiled.allow, view);
  if (compiled.audit.length + compiled.dryRun.length > 0) logObservers(compiled, view, request, decision.allowed);
  countDecision(decision);
  if (decision.allowed) return false;
  // No deciding policy means the ALLOW policies all missed: naming them is what makes such a 403 explicable.
  const allowMiss = decision.policy === null;
  request.log.info(
    { authz: { decision: 'deny', policy: decision.policy ?? 'none', rule: decision.ruleIndex, ...(allowMiss ? { tried: compiled.allowTried } : {}) } },
    'authorization policy denied the request',
  );
  sendLocalReply(request, reply, {
    status: 403,
    flag: '',
    details: denialDetails(decision),
    message: RBAC_DENIED_MESSAGE,
    ...(allowMiss ? { debugNote: compiled.allowTried } : {}),
  });
  return true;
}

async function authorizeWithCustom(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const compiled = request.mesh.pluginState<CompiledAuthz>(AUTHZ_PLUGIN_NAME);
  const view = authzRequestFrom(request);
  const denied = await runCustom(compiled, view, request, reply);
  if (denied !== null) return denied;
  enforceRbac(compiled, view, request, reply);
}

const customHook = conditionalHook(() => true, authorizeWithCustom);

/**
 * Only CUSTOM policies need a network call; the RBAC decision is synchronous, so without them the
 * hook decides in place instead of paying a promise and a microtask turn on every request.
 */
function authorizeHook(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const compiled = request.mesh.pluginState<CompiledAuthz>(AUTHZ_PLUGIN_NAME);
  if (!hasPolicies(compiled)) {
    done();
    return;
  }
  if (compiled.custom.length > 0) {
    customHook(request, reply, done);
    return;
  }
  let answered: boolean;
  try {
    answered = enforceRbac(compiled, authzRequestFrom(request), request, reply);
  } catch (error) {
    done(error instanceof Error ? error : new Error(String(error)));
    return;
  }
  if (!answered) done();
}

/** A TCP connection the policies deny is closed before a byte is forwarded (docs/policies.md#authorizationpolicy-on-tcp). */
function admitConnection(compiled: unknown, connection: ConnectionAttributes): ConnectionDenial | null {
  const { tcp } = compiled as CompiledAuthz;
  if (tcp.deny.policies.length + tcp.allow.policies.length === 0) return null;
  const decision = evaluateRbac(tcp.deny, tcp.allow, authzConnectionView(connection));
  countDecision(decision);
  return decision.allowed ? null : { details: denialDetails(decision) };
}

export const authzPlugin: MeshPlugin<CompiledAuthz> = {
  name: AUTHZ_PLUGIN_NAME,
  compile: compileAuthz,
  inboundOnly: true,
  connections: { admit: admitConnection },
  explain: (compiled, request) => explainRequest(compiled as CompiledAuthz, request),
  register: fp(
    async (app) => {
      app.addHook('onRequest', authorizeHook);
    },
    { name: 'meshgate-authz' },
  ),
};
