/**
 * Every response the proxy generates itself goes through here, so that it always explains itself:
 * the reason is recorded on the request (access log, metrics) and the body says it in plain words.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';
import type { LocalReply } from '../pipeline/types.js';
import { encodeGrpcMessage, grpcStatusForHttp, isGrpcRequest, respondTrailersOnly } from './grpc.js';

export const REASON_HEADER = 'x-meshgate-reason';

export function sendLocalReply(
  request: FastifyRequest,
  reply: FastifyReply,
  localReply: LocalReply,
  extraHeaders?: Readonly<Record<string, string>>,
): FastifyReply {
  const mesh = request.mesh;
  mesh.localReply = localReply;
  if (localReply.flag !== '' && !mesh.responseFlags.includes(localReply.flag)) mesh.responseFlags.push(localReply.flag);
  if (extraHeaders !== undefined) reply.headers(extraHeaders);
  if (mesh.debugHeaders) {
    const reason = localReply.flag === '' ? localReply.details : `${localReply.flag} ${localReply.details}`;
    reply.header(REASON_HEADER, localReply.debugNote === undefined ? reason : `${reason}; ${localReply.debugNote}`);
  }
  if (isGrpcRequest(request.headers)) {
    // A gRPC client reads the outcome from grpc-status, never from the HTTP status: trailers-only, as Envoy
    // answers. Written on the raw response, so that over HTTP/2 the HEADERS frame itself ends the stream
    // (fastify's send would end it with a DATA frame).
    const message = localReply.message === '' ? localReply.details : localReply.message;
    const headers: OutgoingHttpHeaders = {
      ...(reply.getHeaders() as OutgoingHttpHeaders),
      'content-type': 'application/grpc',
      'grpc-status': String(grpcStatusForHttp(localReply.status)),
      'grpc-message': encodeGrpcMessage(message),
    };
    reply.hijack();
    if (!respondTrailersOnly(reply.raw, 200, headers)) reply.raw.writeHead(200, headers);
    reply.raw.end();
    return reply;
  }
  reply.code(localReply.status);
  if (localReply.message === '') return reply.send();
  return reply.type('text/plain; charset=utf-8').send(`${localReply.message}\n`);
}
