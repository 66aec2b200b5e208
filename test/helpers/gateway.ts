/**
 * End-to-end helpers: free ports (ports.ts), a config directory written from YAML text, an in-process gateway
 * (the same GatewayRuntime `meshgate run` uses) and tiny loopback upstreams.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import type { ProxyMode } from '../../gateway/pipeline/types.js';
import { GatewayRuntime } from '../../gateway/runtime/gateway-runtime.js';

export { freePort } from './ports.js';

export interface ConfigDir {
  readonly dir: string;
  readonly file: string;
  write(yaml: string): Promise<void>;
  remove(): Promise<void>;
}

export async function configDir(yaml: string, fileName = 'mesh.yaml'): Promise<ConfigDir> {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-test-'));
  const file = join(dir, fileName);
  await writeFile(file, yaml);
  return {
    dir,
    file,
    write: (text) => writeFile(file, text),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface RunningGateway {
  readonly runtime: GatewayRuntime;
  /** Log lines the gateway wrote (JSON objects). */
  readonly logs: Record<string, unknown>[];
  /** The same lines as written (JSON.parse would hide a key written twice). */
  readonly rawLogs: string[];
  stop(): Promise<void>;
}

export interface StartGatewayOptions {
  readonly mode?: ProxyMode;
  readonly workload?: string;
  readonly adminAddress?: string;
  /** Default '' (off): tests run many gateways at once, and 15020/15021 would collide. */
  readonly statusAddress?: string;
  readonly metricsAddress?: string;
  readonly watch?: boolean;
  /** Clock of outlier ejections (RuntimeOptions.now). */
  readonly now?: () => number;
}

export async function startGateway(configPath: string, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const logs: Record<string, unknown>[] = [];
  const rawLogs: string[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        rawLogs.push(line);
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  const runtime = new GatewayRuntime({
    configPath,
    mode: options.mode ?? 'ingress',
    plugins: PIPELINE_PLUGINS,
    logger,
    watch: options.watch ?? false,
    statusAddress: options.statusAddress ?? '',
    metricsAddress: options.metricsAddress ?? '',
    ...(options.workload === undefined ? {} : { workloadName: options.workload }),
    ...(options.adminAddress === undefined ? {} : { adminAddress: options.adminAddress }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const started = await runtime.start();
  if (!started.ok) throw new Error(`gateway refused the config: ${started.diagnostics.map((d) => `${d.code} ${d.message}`).join('; ')}`);
  return { runtime, logs, rawLogs, stop: () => runtime.shutdown('test') };
}

export interface Upstream {
  readonly port: number;
  readonly server: http.Server;
  /** Requests received so far. */
  readonly received: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export type UpstreamHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** A loopback upstream; the default handler answers 200 with JSON describing the request it got. */
export async function startUpstream(handler?: UpstreamHandler, name = 'upstream'): Promise<Upstream> {
  const received: Upstream['received'] = [];
  const server = http.createServer((request, response) => {
    received.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers });
    if (handler !== undefined) return handler(request, response);
    request.resume();
    request.on('end', () => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ upstream: name, method: request.method, url: request.url, headers: request.headers }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    server,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
