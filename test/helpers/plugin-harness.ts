/**
 * Runs request-path plugins in a real fastify app without the rest of the gateway, so a plugin can be
 * tested on its own: compile → hooks → a terminal handler that echoes what would be forwarded.
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Diagnostic, Resource } from '../../gateway/config/resource.js';
import { MeshRequestContext } from '../../gateway/pipeline/context.js';
import type { MeshPlugin, ProxyMode, RequestAttributes, WorkloadInfo } from '../../gateway/pipeline/types.js';

export interface HarnessOptions {
  readonly plugins: readonly MeshPlugin[];
  readonly resources: readonly Resource[];
  readonly mode?: ProxyMode;
  readonly workload?: Partial<WorkloadInfo>;
  readonly rootNamespace?: string;
  readonly trustDomain?: string;
  readonly debugHeaders?: boolean;
  /** Override the attributes the core would compute (peer identity, remote IP, …). */
  readonly attrs?: (request: FastifyRequest) => Partial<RequestAttributes>;
}

export interface Harness {
  readonly app: FastifyInstance;
  readonly diagnostics: Diagnostic[];
}

export async function buildPluginHarness(options: HarnessOptions): Promise<Harness> {
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const namespace = options.workload?.namespace ?? 'default';
  const serviceAccount = options.workload?.serviceAccount ?? 'default';
  const workload: WorkloadInfo = {
    name: options.workload?.name ?? 'test-workload',
    namespace,
    labels: options.workload?.labels ?? {},
    serviceAccount,
    principal: `${trustDomain}/ns/${namespace}/sa/${serviceAccount}`,
  };
  const diagnostics: Diagnostic[] = [];
  const states = new Map<string, unknown>();
  for (const plugin of options.plugins) {
    states.set(
      plugin.name,
      plugin.compile({
        resources: options.resources,
        mode: options.mode ?? 'ingress',
        workload,
        rootNamespace: options.rootNamespace ?? 'istio-system',
        trustDomain,
        diagnostics,
      }, undefined),
    );
  }

  const app = Fastify({ logger: false });
  app.decorateRequest('mesh', null as unknown as MeshRequestContext);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  let requestCounter = 0;
  app.addHook('onRequest', async (request) => {
    const url = request.raw.url ?? '/';
    const queryAt = url.indexOf('?');
    const authority = (request.headers.host ?? '').toLowerCase();
    const base: RequestAttributes = {
      method: request.method,
      authority,
      host: authority.replace(/:\d+$/, ''),
      path: queryAt === -1 ? url : url.slice(0, queryAt),
      query: queryAt === -1 ? '' : url.slice(queryAt + 1),
      scheme: 'http',
      sourceIp: request.socket.remoteAddress ?? '',
      remoteIp: request.socket.remoteAddress ?? '',
      destinationIp: request.socket.localAddress ?? '',
      destinationPort: request.socket.localPort ?? 0,
      sni: '',
      peer: null,
    };
    const attrs = { ...base, ...options.attrs?.(request) };
    request.mesh = new MeshRequestContext(1, options.debugHeaders ?? true, attrs, `req-${++requestCounter}`, states);
  });
  for (const plugin of options.plugins) await app.register(plugin.register);
  app.all('/*', async (request) => ({ forwarded: true, path: request.raw.url, headers: request.headers }));
  await app.ready();
  return { app, diagnostics };
}

/**
 * Resolves after the current event-loop turn's after-response batches (gateway/pipeline/after-response.ts)
 * have run, as they have for any request (a scrape, say) that arrives after a response.
 */
export function afterResponses(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
