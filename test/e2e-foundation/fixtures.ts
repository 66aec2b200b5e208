/**
 * Shared pieces of the foundation end-to-end tests: the smallest complete ingress config (MeshConfig,
 * Gateway, VirtualService, ServiceEntry), the `meshgate` CLI as a child process, and plain HTTP calls
 * over real sockets. Everything binds 127.0.0.1 and every wait is bounded.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { Test } from 'tap';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/gateway.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));

export interface IngressConfig {
  readonly adminPort: number;
  readonly gatewayPort: number;
  readonly upstreamPort: number;
  /** Value of the `x-config-version` response header the route adds (tells configs apart). */
  readonly version?: string;
  readonly drainDuration?: string;
  /** Hosts of the Gateway server (default `["*"]`). */
  readonly gatewayHosts?: readonly string[];
}

/** One Gateway on 127.0.0.1:gatewayPort routing every host to one loopback upstream. */
export function ingressYaml(config: IngressConfig): string {
  return `apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
  namespace: istio-system
spec:
  adminAddress: "127.0.0.1:${config.adminPort}"
  debugHeaders: true
  drainDuration: ${config.drainDuration ?? '5s'}
  accessLog:
    enabled: false
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
    - port: {number: ${config.gatewayPort}, name: http, protocol: HTTP}
      bind: 127.0.0.1
      hosts: ${JSON.stringify(config.gatewayHosts ?? ['*'])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: app
  namespace: default
spec:
  gateways: [istio-system/edge]
  hosts: ["*"]
  http:
    - name: to-app
      route:
        - destination:
            host: app.example.internal
      headers:
        response:
          set:
            x-config-version: "${config.version ?? '1'}"
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: app
  namespace: default
spec:
  hosts: [app.example.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${config.upstreamPort}}}]
`;
}

/** A VirtualService whose route names a subset no DestinationRule defines: a reload must reject it. */
export function invalidIngressYaml(config: IngressConfig): string {
  return ingressYaml(config).replace('host: app.example.internal\n      headers', 'host: app.example.internal\n            subset: missing\n      headers');
}

export interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export function request(
  url: string,
  options: { method?: string; agent?: http.Agent; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', agent: options.agent ?? false, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

export async function json(url: string, method = 'GET'): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await request(url, { method });
  return { status: response.status, body: JSON.parse(response.body) as Record<string, unknown> };
}

/**
 * Polls `check` every 25 ms until it returns true or `timeoutMs` passes. The default bounds a failing
 * test and leaves a loaded machine (processes starting, TLS handshakes) plenty of room.
 */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return true;
    } catch {
      /* not there yet */
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (signal deaths map to -1). */
  readonly exited: Promise<number>;
  /** SIGKILL if still running (teardown). */
  kill(): void;
}

/**
 * `run` gets its status and metrics listeners turned off unless the test names them: test files run
 * in parallel, and every gateway on the defaults (0.0.0.0:15021/15020) would collide.
 */
export function withOperatorPortsOff(args: readonly string[]): readonly string[] {
  if (args[0] !== 'run') return args;
  const named = (flag: string): boolean => args.some((arg) => arg === flag || arg.startsWith(`${flag}=`));
  return [...args, ...(named('--status-address') ? [] : ['--status-address=']), ...(named('--metrics-address') ? [] : ['--metrics-address='])];
}

export function spawnCli(args: readonly string[], cwd = REPO_ROOT): CliProcess {
  const child = spawn(process.execPath, [CLI, ...withOperatorPortsOff(args)], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** At most two CLI children at a time: more only thrash a busy test machine. */
const CLI_CONCURRENCY = 2;
let running = 0;
const waiting: (() => void)[] = [];

async function slot(): Promise<() => void> {
  if (running >= CLI_CONCURRENCY) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  return () => {
    running -= 1;
    waiting.shift()?.();
  };
}

/** Runs a CLI command to completion (bounded: killed after `timeoutMs`). */
export async function runCli(args: readonly string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const release = await slot();
  const cli = spawnCli(args);
  const timer = setTimeout(() => cli.kill(), timeoutMs);
  const code = await cli.exited;
  clearTimeout(timer);
  release();
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** Whether a TCP connect to 127.0.0.1:port is accepted. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code !== 'ECONNREFUSED'));
    req.end();
  });
}

/** `meshgate run` as a child process, resolved once its admin /ready answers 200; killed at teardown. */
export async function runGateway(t: Test, configPath: string, adminPort: number): Promise<CliProcess> {
  const cli = spawnCli(['run', '-c', configPath]);
  t.teardown(() => cli.kill());
  const ready = await eventually(async () => (await request(`http://127.0.0.1:${adminPort}/ready`)).status === 200, 30_000);
  if (!ready) throw new Error(`gateway did not become ready:\n${cli.stdout()}\n${cli.stderr()}`);
  return cli;
}

/** Fresh ports for one gateway in front of `upstreamPort`. */
export async function ports(upstreamPort: number, drainDuration?: string): Promise<IngressConfig> {
  return { adminPort: await freePort(), gatewayPort: await freePort(), upstreamPort, ...(drainDuration === undefined ? {} : { drainDuration }) };
}

/** Resolves with the exit code, or null when the process is still running after `ms`. */
export async function exitWithin(cli: CliProcess, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  const code = await Promise.race([cli.exited, timeout]);
  clearTimeout(timer);
  return code;
}
