/**
 * Bytes a request and its response took on the downstream connection (headers + body), which is
 * what Envoy reports as request/response size. Node counts per socket, so each request gets the
 * delta since the previous exchange on the same keep-alive connection; the result is measured once
 * per request and shared by the metrics and the access log.
 */
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DownstreamBytes } from './types.js';

interface SocketMark {
  read: number;
  written: number;
}

const socketMarks = new WeakMap<Socket, SocketMark>();

/** Call once the response is complete (onResponse). */
export function wireBytes(request: FastifyRequest, reply: FastifyReply): DownstreamBytes {
  const known = request.mesh.downstreamBytes;
  if (known !== null) return known;
  const socket = request.raw.socket as Socket | null;
  // HTTP/2 multiplexes many streams on one socket, so a socket delta means nothing there: estimate.
  // (So do sockets without counters, such as the fake one of fastify's inject().)
  const countable = socket !== null && request.raw.httpVersionMajor < 2 && typeof socket.bytesRead === 'number';
  const bytes = countable ? socketDelta(socket) : estimate(request, reply);
  request.mesh.downstreamBytes = bytes;
  return bytes;
}

function socketDelta(socket: Socket): DownstreamBytes {
  let mark = socketMarks.get(socket);
  if (mark === undefined) {
    mark = { read: 0, written: 0 };
    socketMarks.set(socket, mark);
  }
  const read = socket.bytesRead;
  const written = socket.bytesWritten;
  const bytes = { received: Math.max(0, read - mark.read), sent: Math.max(0, written - mark.written) };
  mark.read = read;
  mark.written = written;
  return bytes;
}

function estimate(request: FastifyRequest, reply: FastifyReply): DownstreamBytes {
  let received = Number(request.headers['content-length'] ?? 0) || 0;
  const raw = request.raw.rawHeaders;
  for (let i = 0; i < raw.length; i++) received += (raw[i]?.length ?? 0) + 2;
  const headers = request.mesh.relayedHeaders ?? reply.getHeaders();
  let sent = Number(headers['content-length'] ?? 0) || 0;
  for (const [name, value] of Object.entries(headers)) sent += name.length + String(value).length + 4;
  return { received, sent };
}
