/**
 * Request-path hooks with a synchronous fast path. An `async` fastify hook costs a promise and a
 * microtask turn on every request, even when it has nothing to do, and most requests meet no JWT
 * rule, no authorization policy, no rate limit and no fault. So a plugin says, from the compiled state
 * of the request's snapshot, whether its step applies; when it does not, the hook continues at once.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';

export type PipelineHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

/**
 * A hook that runs `step` only when `applies(request)`. A step may answer at once (return nothing) or
 * later (return a promise): a local decision then costs no promise and no microtask turn. As with an
 * async hook, a step that answers the request (a local reply) ends the pipeline, and a step that throws
 * or rejects goes to the error handler.
 */
export function conditionalHook(
  applies: (request: FastifyRequest) => boolean,
  step: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | void,
): PipelineHook {
  return (request, reply, done) => {
    if (!applies(request)) {
      done();
      return;
    }
    // A sent reply ends the pipeline: fastify's documented way is not to call done.
    const continueUnlessSent = (): void => {
      if (!reply.sent) done();
    };
    const fail = (error: unknown): void => done(error instanceof Error ? error : new Error(String(error)));
    let pending: Promise<unknown> | void;
    try {
      pending = step(request, reply);
    } catch (error) {
      fail(error);
      return;
    }
    if (pending instanceof Promise) pending.then(continueUnlessSent, fail);
    else continueUnlessSent();
  };
}
