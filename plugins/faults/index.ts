/**
 * Fault injection from the matched route (docs/routing.md#fault-injection): a delay and/or an abort, each with
 * its own percentage (absent ⇒ 0 %, never injected). Delay first, then abort; an abort never reaches
 * the upstream and is never retried. Runs after rate limiting, like Envoy's fault filter sits after RBAC.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { setTimeout as sleep } from 'node:timers/promises';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import { conditionalHook } from '../../gateway/pipeline/hooks.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { grpcStatusCode } from './grpc-status.js';

export const FAULTS_PLUGIN_NAME = 'faults';

export interface FaultsOptions {
  /** Source of randomness (tests pass a seeded one). */
  readonly random?: () => number;
}

function hasFault(request: FastifyRequest): boolean {
  const fault = request.mesh.route?.fault;
  return fault !== undefined && fault !== null;
}

export function createFaultsPlugin(options: FaultsOptions = {}): MeshPlugin<null> {
  const random = options.random ?? Math.random;
  async function injectFault(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const fault = request.mesh.route?.fault;
    if (fault === undefined || fault === null) return;
    if (fault.delay !== null && fault.delay.fraction > 0 && random() < fault.delay.fraction) {
      request.mesh.responseFlags.push('DI');
      await sleep(fault.delay.ms);
    }
    const abort = fault.abort;
    if (abort === null || abort.fraction <= 0 || random() >= abort.fraction) return;
    if ('httpStatus' in abort) {
      return sendLocalReply(request, reply, { status: abort.httpStatus, flag: 'FI', details: 'fault_filter_abort', message: 'fault filter abort' });
    }
    // A gRPC abort is an HTTP 200 carrying the status in headers (trailers-only response).
    return sendLocalReply(
      request,
      reply,
      { status: 200, flag: 'FI', details: 'fault_filter_abort', message: '' },
      { 'content-type': 'application/grpc', 'grpc-status': String(grpcStatusCode(abort.grpcStatus)), 'grpc-message': 'fault filter abort' },
    );
  }

  return {
    name: FAULTS_PLUGIN_NAME,
    compile: () => null,
    register: fp(
      async (app) => {
        app.addHook('preHandler', conditionalHook(hasFault, injectFault));
      },
      { name: 'meshgate-faults', fastify: '5.x' },
    ),
  };
}

export const faultsPlugin = createFaultsPlugin();
