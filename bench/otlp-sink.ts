/**
 * A stand-in OTLP/HTTP collector for the observability target: accepts `POST /v1/traces` (protobuf
 * or JSON, not decoded) and answers 200, so the gateway's exporter does the work it would do in
 * production without a real collector. `GET /stats` returns how many export batches and bytes
 * arrived, so the driver can check that spans really were exported.
 *
 * Prints the ready line (contract.ts) once bound.
 */
import { createServer } from 'node:http';
import { once } from 'node:events';
import { announceAndStopOnSignal } from './contract.js';

let batches = 0;
let bytes = 0;

const server = createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/v1/traces') {
    request.on('data', (chunk: Buffer) => (bytes += chunk.length));
    request.on('end', () => {
      batches += 1;
      response.writeHead(200, { 'content-type': request.headers['content-type'] ?? 'application/json' });
      response.end();
    });
    return;
  }
  request.resume();
  if (request.method === 'GET' && request.url === '/stats') {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ batches, bytes }));
    return;
  }
  response.writeHead(404);
  response.end();
});

server.listen(0, '127.0.0.1');
await once(server, 'listening');
announceAndStopOnSignal(server, () => {
  server.close();
});
