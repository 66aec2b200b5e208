/**
 * The `policies` suite's targets: the ingress hot route of `meshgate-http` with one feature added
 * (policy-config.ts), so each reads as "meshgate-http plus that feature". Proxy and upstream share
 * CPU 1 as in the ingress suite.
 *
 * The helpers they need run off the measured CPU: a private redis-server (no persistence) and the
 * OTLP sink are pinned to CPU 0 with the load generator, as a remote store or collector would not
 * share the proxy's core.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOT_HOST, HOT_PATH } from './config.js';
import { NOOP_PLUGIN_FILE, NOOP_PLUGIN_NAME, NOOP_PLUGIN_SOURCE, benchJwt, writeIngressVariantConfig } from './policy-config.js';
import type { IngressVariant } from './policy-config.js';
import { LOAD_GENERATOR_CPU } from './processes.js';
import type { ChildService } from './processes.js';
import { freePort } from '../test/helpers/ports.js';
import { startMeshgate, startUpstream } from './targets.js';
import type { BenchTarget, RunningTarget, TargetContext } from './targets.js';

export const POLICIES_TARGET = 'meshgate-policies-50';
export const RATELIMIT_LOCAL_TARGET = 'meshgate-ratelimit-local';
export const RATELIMIT_REDIS_TARGET = 'meshgate-ratelimit-redis';
export const OBSERVABILITY_TARGET = 'meshgate-observability';
export const QUIET_TARGET = 'meshgate-quiet';
export const USER_PLUGIN_TARGET = 'meshgate-user-plugin-noop';
export const FULL_CHAIN_TARGET = 'meshgate-full-chain';

const REDIS_SERVER = 'redis-server';
const HELPER_START_TIMEOUT_MS = 10_000;
const POLL_MS = 50;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));

/** Sends one inline command to redis on 127.0.0.1:port; resolves with the first reply chunk, or null. */
function redisCommand(port: number, command: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => socket.destroy());
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.once('data', (chunk: Buffer) => {
      socket.destroy();
      resolve(chunk.toString());
    });
    socket.once('close', () => resolve(null));
    socket.once('error', () => resolve(null));
  });
}

async function redisPing(port: number): Promise<boolean> {
  return (await redisCommand(port, 'PING'))?.startsWith('+PONG') ?? false;
}

/** Status of one GET to the target with exactly these extra headers (e.g. without its token). */
function statusOf(running: RunningTarget, headers: Readonly<Record<string, string>>): Promise<number> {
  return new Promise((resolve, reject) => {
    const send = running.url.startsWith('https:') ? httpsRequest : request;
    // The bench's own throwaway server certificate: what is checked here is the status, not the chain.
    const outgoing = send(running.url, { headers: running.host === null ? { ...headers } : { ...headers, host: running.host }, timeout: 5_000, rejectUnauthorized: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error('timed out')));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

export async function startRedis(context: TargetContext): Promise<{ service: ChildService; url: string }> {
  const port = await freePort();
  const service = context.processes.start('redis-server', LOAD_GENERATOR_CPU, REDIS_SERVER, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ]);
  const deadline = Date.now() + HELPER_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!service.isRunning()) throw new Error(`redis-server exited:\n${service.outputTail()}`);
    if (await redisPing(port)) return { service, url: `redis://127.0.0.1:${port}` };
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`redis-server not answering PING after ${HELPER_START_TIMEOUT_MS} ms:\n${service.outputTail()}`);
}

async function startOtlpSink(context: TargetContext): Promise<{ service: ChildService; endpoint: string }> {
  const service = context.processes.start('otlp-sink', LOAD_GENERATOR_CPU, process.execPath, [join(BENCH_DIST, 'otlp-sink.js')]);
  const [port] = await service.readyPorts(HELPER_START_TIMEOUT_MS);
  return { service, endpoint: `http://127.0.0.1:${port}/v1/traces` };
}

interface Prepared {
  readonly variant: IngressVariant;
  readonly headers?: Readonly<Record<string, string>>;
  readonly helpers?: readonly ChildService[];
  /** Serve HTTPS (TLS 1.3, keep-alive) instead of HTTP. */
  readonly tls?: boolean;
  /** Proves the feature is really active (throws otherwise), so a silently ignored resource cannot pass as "free". */
  readonly verify?: (running: RunningTarget, adminPort: number) => Promise<void>;
}

/** The no-op plugin must be placed on the listener, or the target would measure meshgate-http twice. */
async function verifyPluginPlaced(adminPort: number): Promise<void> {
  const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { plugins?: Record<string, { phases: Record<string, { plugin: string }[]> }[]> };
  const placed = dump.plugins?.['user-plugins']?.[0]?.phases.STATS?.map((entry) => entry.plugin) ?? [];
  if (!placed.includes(`default/${NOOP_PLUGIN_NAME}`)) throw new Error(`the no-op user plugin is not placed on the listener (config_dump STATS: ${JSON.stringify(placed)})`);
}

function ingressVariant(name: string, description: string, prepare: (context: TargetContext, directory: string) => Promise<Prepared>): BenchTarget {
  return {
    name,
    description,
    async start(context) {
      const upstream = await startUpstream(context);
      const directory = join(context.workDirectory, name);
      await mkdir(directory, { recursive: true });
      const prepared = await prepare(context, directory);
      const [listenerPort, adminPort] = [await freePort(), await freePort()];
      const tls = prepared.tls === true;
      const configPath = await writeIngressVariantConfig({ directory, upstreamPorts: upstream.ports, listenerPort, adminPort, tls: tls ? context.serverCertificate : null }, prepared.variant);
      const proxy = await startMeshgate(context, name, configPath, adminPort, 'ingress');
      const running: RunningTarget = {
        url: `${tls ? 'https' : 'http'}://127.0.0.1:${listenerPort}${HOT_PATH}`,
        host: HOT_HOST,
        ...(prepared.headers === undefined ? {} : { headers: prepared.headers }),
        proxyPid: proxy.pid,
        upstreamPid: upstream.service.pid,
        stop: () => context.processes.stop([proxy, upstream.service, ...(prepared.helpers ?? [])]),
      };
      await prepared.verify?.(running, adminPort);
      return running;
    },
  };
}

/** The access log is flushed on a timer: a line must reach the file within a few flush intervals. */
async function waitForAccessLogLine(path: string): Promise<void> {
  const deadline = Date.now() + HELPER_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (((await stat(path).catch(() => null))?.size ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`no access-log line in ${path} ${HELPER_START_TIMEOUT_MS} ms after a request: the access log is not in force`);
}

/** Without its token the hot request must be refused, or the policies would not be measured. */
async function verifyPoliciesInForce(running: RunningTarget): Promise<void> {
  const withoutToken = await statusOf(running, {});
  if (withoutToken !== 403) throw new Error(`the hot request without a token got ${withoutToken}, expected 403: the policies are not in force`);
}

export const POLICY_TARGETS: readonly BenchTarget[] = [
  ingressVariant(POLICIES_TARGET, 'meshgate-http + 50 AuthorizationPolicies (hot ALLOW is #48) + RequestAuthentication, RS256 bearer token', async (context) => {
    const jwt = await benchJwt(context.workDirectory);
    return { variant: { kind: 'policies', jwks: jwt.jwks }, headers: { authorization: `Bearer ${jwt.token}` }, verify: verifyPoliciesInForce };
  }),
  ingressVariant(
    FULL_CHAIN_TARGET,
    'the whole chain at once: HTTPS (TLS 1.3 keep-alive) + RS256 JWT + 50 AuthorizationPolicies + local rate limit + 106-rule canary table + metrics + access log to a file',
    async (context, directory) => {
      const jwt = await benchJwt(context.workDirectory);
      const accessLogPath = join(directory, 'access.log');
      return {
        variant: { kind: 'full-chain', jwks: jwt.jwks, accessLogPath },
        headers: { authorization: `Bearer ${jwt.token}` },
        tls: true,
        async verify(running) {
          await verifyPoliciesInForce(running);
          await waitForAccessLogLine(accessLogPath);
        },
      };
    },
  ),
  ingressVariant(RATELIMIT_LOCAL_TARGET, 'meshgate-http + RateLimitPolicy per client IP, never reached, backend local', async () => ({ variant: { kind: 'ratelimit-local' } })),
  ingressVariant(RATELIMIT_REDIS_TARGET, 'meshgate-http + RateLimitPolicy per client IP, never reached, backend redis (private redis-server on CPU 0)', async (context) => {
    const redis = await startRedis(context);
    return {
      variant: { kind: 'ratelimit-redis', redisUrl: redis.url },
      helpers: [redis.service],
      async verify(running) {
        const status = await statusOf(running, {});
        const keys = await redisCommand(Number(new URL(redis.url).port), 'DBSIZE');
        if (status !== 200 || keys === null || !/^:[1-9]/.test(keys)) throw new Error(`after one request (${status}) redis holds ${keys?.trim() ?? 'no answer'} keys: the limiter does not use redis`);
      },
    };
  }),
  ingressVariant(USER_PLUGIN_TARGET, 'meshgate-http + one no-op user plugin (Plugin resource, phase STATS) scoped to the hot VirtualService', async (_context, directory) => {
    await writeFile(join(directory, NOOP_PLUGIN_FILE), NOOP_PLUGIN_SOURCE);
    return { variant: { kind: 'user-plugin' }, verify: (_running, adminPort) => verifyPluginPlaced(adminPort) };
  }),
  ingressVariant(QUIET_TARGET, 'meshgate-http with access log, tracing and Istio request metrics all off', async () => ({ variant: { kind: 'quiet' } })),
  ingressVariant(OBSERVABILITY_TARGET, 'meshgate-http + access log to a file + tracing 1 % to a local OTLP/HTTP sink (metrics on)', async (context, directory) => {
    const sink = await startOtlpSink(context);
    return { variant: { kind: 'observability', accessLogPath: join(directory, 'access.log'), otlpEndpoint: sink.endpoint }, helpers: [sink.service] };
  }),
];
