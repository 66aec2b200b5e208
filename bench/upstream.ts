/**
 * The benchmark's application: a plain node:http keep-alive server answering every request with the
 * same 117-byte JSON body (bench/README.md#method). It runs as its own process so its CPU is
 * measured apart from the proxy's. `--listeners N` opens N ports served by the same process, so a
 * canary split across two endpoints costs no extra process; each listener names itself in
 * `x-bench-listener` so the driver can check which endpoint answered.
 *
 * Prints the ready line (contract.ts) once every listener is bound.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { LISTENER_HEADER, UPSTREAM_BODY, readyLine } from './contract.js';

/** Longer than any measured run, so wrk's connections are never closed by the server mid-run. */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;
const MAX_LISTENERS = 8;

const bodyBuffer = Buffer.from(UPSTREAM_BODY);

function startListener(index: number): Server {
  const headers = {
    'content-type': 'application/json',
    'content-length': String(bodyBuffer.length),
    [LISTENER_HEADER]: String(index),
  };
  const server = createServer((request, response) => {
    // Drain any request body so the connection stays reusable.
    request.resume();
    response.writeHead(200, headers);
    response.end(bodyBuffer);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
  server.listen(0, '127.0.0.1');
  return server;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listeners: { type: 'string', default: '1' } } });
  const count = Number(values.listeners);
  if (!Number.isInteger(count) || count < 1 || count > MAX_LISTENERS) throw new Error(`--listeners must be 1..${MAX_LISTENERS}`);
  const servers = Array.from({ length: count }, (_, index) => startListener(index));
  await Promise.all(servers.map((server) => once(server, 'listening')));
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('listener has no TCP address');
    return address.port;
  });
  process.stdout.write(readyLine(ports));
  const close = (): void => {
    for (const server of servers) server.close();
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
}

await main();
