/**
 * The admin listener (Linkerd/Envoy style): few, plain endpoints on their own port, 127.0.0.1 by
 * default. Reads are GET; anything that changes state is POST, and shutdown only from loopback.
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { isIP } from 'node:net';
import { SCHEMALESS } from '../http/schemaless.js';

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly generation: number;
  readonly errors: number;
  readonly warnings: number;
  readonly message: string;
}

/** What the admin API needs from the running gateway; kept narrow so the admin server knows nothing of modes. */
export interface AdminSource {
  readonly mode: string;
  readonly version: string;
  readonly startedAt: Date;
  /** null until the first snapshot is active. */
  generation(): number | null;
  isDraining(): boolean;
  configDump(): unknown;
  reload(): Promise<ReloadOutcome>;
  shutdown(): void;
}

/** Extra read-only views contributed by features (metrics, clusters, certs, explain). */
export interface AdminView {
  readonly path: string;
  readonly method?: 'GET' | 'POST';
  handle(query: Readonly<Record<string, string>>, body: unknown): Promise<{ status?: number; contentType: string; body: string }>;
}

const MUTATIONS = ['/reload', '/shutdown'];

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined || isIP(address) === 0) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

function methodNotAllowed(reply: FastifyReply, allow: string): FastifyReply {
  return reply.code(405).header('allow', allow).type('text/plain; charset=utf-8').send('method not allowed\n');
}

export async function createAdminServer(source: AdminSource, views: readonly AdminView[] = []): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, schemaController: SCHEMALESS });

  app.get('/live', async () => ({ live: true }));
  app.get('/ready', async (_request, reply) => {
    const generation = source.generation();
    if (source.isDraining()) return reply.code(503).send({ ready: false, reason: 'draining' });
    if (generation === null) return reply.code(503).send({ ready: false, reason: 'no active configuration' });
    return { ready: true, generation };
  });
  app.get('/server_info', async () => ({
    version: source.version,
    // Lets a supervisor (the demo) tell its own child from a stale process answering on the same port.
    pid: process.pid,
    mode: source.mode,
    state: source.isDraining() ? 'DRAINING' : source.generation() === null ? 'INITIALIZING' : 'LIVE',
    uptimeSeconds: Math.round((Date.now() - source.startedAt.getTime()) / 1000),
    generation: source.generation(),
  }));
  app.get('/config_dump', async () => source.configDump());

  app.post('/reload', async (_request, reply) => {
    const outcome = await source.reload();
    return reply.code(outcome.ok ? 200 : 422).send(outcome);
  });
  app.post('/shutdown', async (request, reply) => {
    if (!isLoopback(request.socket.remoteAddress)) {
      return reply.code(403).type('text/plain; charset=utf-8').send('shutdown is accepted from loopback only\n');
    }
    setImmediate(() => source.shutdown());
    return { shuttingDown: true };
  });
  for (const path of MUTATIONS) {
    app.route({ method: ['GET', 'PUT', 'DELETE', 'PATCH'], url: path, handler: async (_request, reply) => methodNotAllowed(reply, 'POST') });
  }

  for (const view of views) {
    app.route({
      method: view.method ?? 'GET',
      url: view.path,
      handler: async (request, reply) => {
        const result = await view.handle(request.query as Record<string, string>, request.body);
        return reply.code(result.status ?? 200).type(result.contentType).send(result.body);
      },
    });
  }
  return app;
}
