/**
 * Dapr's error answer: `{"errorCode":"ERR_…","message":"…"}` with the status Dapr uses. The code is
 * also the request's local-reply reason, so the access log and metrics say why the sidecar answered.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { REASON_HEADER } from '../../http/local-reply.js';

export function daprError(request: FastifyRequest, reply: FastifyReply, status: number, errorCode: string, message: string): FastifyReply {
  const mesh = request.mesh;
  mesh.localReply = { status, flag: '', details: errorCode, message };
  if (mesh.debugHeaders) reply.header(REASON_HEADER, errorCode);
  return reply.code(status).type('application/json').send(JSON.stringify({ errorCode, message }));
}
