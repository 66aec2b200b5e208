/**
 * Dapr's health endpoints and shutdown. The sidecar is healthy once it serves a snapshot: the Dapr API
 * answers, components connect in the background, and a store or broker outage fails only the calls
 * that need it (the sidecar stays ready for invocation, which is why /healthz does not wait on them).
 * While draining, fastify already answers 503 to new requests.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DaprBuildingBlock } from '../api/building-block.js';
import { daprError } from '../api/errors.js';
import { daprSnapshotOf } from '../api/request.js';

function healthz(request: FastifyRequest<{ Querystring: { appid?: string } }>, reply: FastifyReply): FastifyReply {
  const { appid } = request.query;
  const own = daprSnapshotOf(request).appId;
  // Consul's resolver probes `?appid=` to confirm it reached the right sidecar.
  if (appid !== undefined && appid !== own) return daprError(request, reply, 500, 'ERR_HEALTH_APPID_NOT_MATCH', `app id mismatch: this sidecar is "${own}", not "${appid}"`);
  return reply.code(204).send();
}

export const healthBlock: DaprBuildingBlock<null> = {
  name: 'health',
  componentTypes: [],
  compile: () => null,
  register(app, host) {
    app.get('/v1.0/healthz', healthz);
    app.get('/v1.0/healthz/outbound', (_request, reply) => reply.code(204).send());
    app.post('/v1.0/shutdown', (request, reply) => {
      request.raw.resume();
      // Answer first: the drain then waits for this response like any other in flight.
      reply.raw.once('finish', () => host.requestShutdown());
      return reply.code(204).send();
    });
  },
};
