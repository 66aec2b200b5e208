/**
 * The comparison point: fastify + @fastify/http-proxy with defaults and the logger off, exactly the
 * `bare-fastify` target of bench/README.md#what-runs. It forwards everything to `--upstream <url>`.
 * Prints the ready line (contract.ts) once listening on an ephemeral loopback port.
 */
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import { parseArgs } from 'node:util';
import { announceAndStopOnSignal } from './contract.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { upstream: { type: 'string' } } });
  if (values.upstream === undefined) throw new Error('--upstream <url> is required');
  const app = Fastify({ logger: false });
  await app.register(proxy, { upstream: values.upstream });
  await app.listen({ host: '127.0.0.1', port: 0 });
  announceAndStopOnSignal(app.server, () => app.close());
}

await main();
