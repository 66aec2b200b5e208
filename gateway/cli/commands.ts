/**
 * The CLI commands. Each returns an exit code; `run` resolves only when the proxy has stopped.
 * `validate` and `run` compile through the very same function, so they can never disagree.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { formatDiagnostics, summarize } from '../config/format.js';
import { caInit, caIssue } from '../identity/ca-cli.js';
import { PIPELINE_PLUGINS } from '../pipeline/table.js';
import type { ProxyMode } from '../pipeline/types.js';
import { GatewayRuntime } from '../runtime/gateway-runtime.js';
import { compileConfig } from '../runtime/snapshot.js';
import { describedRequestFrom } from '../runtime/explain-input.js';
import { MESHGATE_VERSION } from '../version.js';
import { createLogger } from './logger.js';
import { EXIT_INVALID, EXIT_OK, UsageError } from './usage.js';
import { AUTHZ_PLUGIN_NAME } from '../../plugins/authz/index.js';
import type { CompiledAuthz } from '../../plugins/authz/compile.js';
import { explainRequest } from '../../plugins/authz/explain.js';

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): Values {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values as Values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function configPath(values: Values): string {
  const path = values.config;
  if (typeof path !== 'string' || path === '') throw new UsageError('missing -c/--config <file|dir>');
  if (!existsSync(path)) throw new UsageError(`config path does not exist: ${path}`);
  return path;
}

function proxyMode(values: Values): ProxyMode {
  const mode = values.mode ?? 'ingress';
  if (mode !== 'ingress' && mode !== 'sidecar') throw new UsageError(`--mode must be ingress or sidecar, got "${String(mode)}"`);
  return mode;
}

const CONFIG_OPTIONS = {
  config: { type: 'string', short: 'c' },
  mode: { type: 'string' },
  workload: { type: 'string' },
} as const;

export async function validateCommand(args: readonly string[]): Promise<number> {
  const values = parse(args, { ...CONFIG_OPTIONS, output: { type: 'string', short: 'o' }, strict: { type: 'boolean' } });
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output must be text or json, got "${String(output)}"`);
  const mode = proxyMode(values);
  const result = await compileConfig(configPath(values), {
    mode,
    plugins: PIPELINE_PLUGINS,
    ...(typeof values.workload === 'string' ? { workloadName: values.workload } : {}),
  });
  const diagnostics = result.ok ? result.config.diagnostics : result.diagnostics;
  const failed = !result.ok || (values.strict === true && diagnostics.some((d) => d.severity === 'warning'));
  if (output === 'json') {
    process.stdout.write(formatDiagnostics(diagnostics, 'json'));
    return failed ? EXIT_INVALID : EXIT_OK;
  }
  // The last line is always the verdict, so a valid config with warnings still ends in one success line.
  const lines = diagnostics.length === 0 ? [] : formatDiagnostics(diagnostics, 'text').trimEnd().split('\n').slice(0, -1);
  const verdict = !failed
    ? `configuration valid: ${result.ok ? result.config.resources.length : 0} resources, ${summarize(diagnostics)}`
    : `configuration invalid: ${summarize(diagnostics)}${result.ok ? ' (--strict: warnings count as errors)' : ''}`;
  process.stdout.write([...lines, verdict].join('\n') + '\n');
  return failed ? EXIT_INVALID : EXIT_OK;
}

export async function runCommand(args: readonly string[]): Promise<number> {
  const values = parse(args, { ...CONFIG_OPTIONS, 'log-level': { type: 'string' }, 'admin-address': { type: 'string' } });
  const logger = createLogger(typeof values['log-level'] === 'string' ? values['log-level'] : 'info');
  const mode = proxyMode(values);
  const path = configPath(values);
  return new Promise<number>((resolve) => {
    // A start failure (a port already taken) shuts the runtime down, whose clean exit must not read as success.
    let startFailed = false;
    const runtime = new GatewayRuntime({
      configPath: path,
      mode,
      plugins: PIPELINE_PLUGINS,
      logger,
      onExit: (code) => resolve(startFailed ? EXIT_INVALID : code),
      ...(typeof values.workload === 'string' ? { workloadName: values.workload } : {}),
      ...(typeof values['admin-address'] === 'string' ? { adminAddress: values['admin-address'] } : {}),
    });
    const stop = (signal: string): void => void runtime.shutdown(signal);
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    runtime.start().then(
      (started) => {
        if (started.ok) return;
        process.stderr.write(formatDiagnostics(started.diagnostics, 'text'));
        process.stderr.write('meshgate: refusing to start on an invalid configuration\n');
        resolve(EXIT_INVALID);
      },
      (error: unknown) => {
        startFailed = true;
        logger.error({ err: error }, 'meshgate failed to start');
        void runtime.shutdown('start failure').finally(() => resolve(EXIT_INVALID));
      },
    );
  });
}

export async function explainCommand(args: readonly string[]): Promise<number> {
  const values = parse(args, {
    ...CONFIG_OPTIONS,
    method: { type: 'string' },
    host: { type: 'string' },
    path: { type: 'string' },
    header: { type: 'string', multiple: true },
    principal: { type: 'string' },
    claims: { type: 'string' },
    'source-ip': { type: 'string' },
  });
  const headers: Record<string, string> = {};
  for (const header of (values.header as string[] | undefined) ?? []) {
    const at = header.indexOf('=');
    if (at <= 0) throw new UsageError(`--header must be name=value, got "${header}"`);
    headers[header.slice(0, at).toLowerCase()] = header.slice(at + 1);
  }
  let claims: unknown;
  if (typeof values.claims === 'string') {
    try {
      claims = JSON.parse(values.claims);
    } catch {
      throw new UsageError('--claims must be a JSON object');
    }
  }
  const described = describedRequestFrom({
    method: values.method,
    host: values.host,
    path: values.path,
    headers,
    peerPrincipal: values.principal,
    sourceIp: values['source-ip'],
    remoteIp: values['source-ip'],
    jwtClaims: claims,
  });
  if (!described.ok) throw new UsageError(described.error);
  const mode = proxyMode(values);
  const result = await compileConfig(configPath(values), {
    mode,
    plugins: PIPELINE_PLUGINS,
    ...(typeof values.workload === 'string' ? { workloadName: values.workload } : {}),
  });
  if (!result.ok) {
    process.stderr.write(formatDiagnostics(result.diagnostics, 'text'));
    return EXIT_INVALID;
  }
  const explanation = explainRequest(result.config.pluginStates.get(AUTHZ_PLUGIN_NAME) as CompiledAuthz, described.request);
  process.stdout.write(`${explanation.decision}${explanation.policy === null ? '' : ` by ${explanation.policy} rule[${explanation.ruleIndex}]`}\n`);
  for (const line of explanation.trace) process.stdout.write(`  ${line}\n`);
  return EXIT_OK;
}

export async function caCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'init') {
    const values = parse(rest, { dir: { type: 'string' }, 'trust-domain': { type: 'string' }, force: { type: 'boolean' } });
    if (typeof values.dir !== 'string') throw new UsageError('ca init needs --dir DIR');
    const result = await caInit({
      dir: values.dir,
      ...(typeof values['trust-domain'] === 'string' ? { trustDomain: values['trust-domain'] } : {}),
      ...(values.force === true ? { force: true } : {}),
    });
    process.stdout.write(`${result.message}\n`);
    return result.exitCode;
  }
  if (sub === 'issue') {
    const values = parse(rest, { dir: { type: 'string' }, namespace: { type: 'string' }, 'service-account': { type: 'string' }, out: { type: 'string' } });
    if (typeof values.dir !== 'string' || typeof values.namespace !== 'string' || typeof values['service-account'] !== 'string') {
      throw new UsageError('ca issue needs --dir DIR --namespace NS --service-account SA');
    }
    const result = await caIssue({
      dir: values.dir,
      namespace: values.namespace,
      serviceAccount: values['service-account'],
      ...(typeof values.out === 'string' ? { out: values.out } : {}),
    });
    process.stdout.write(`${result.message}\n`);
    return result.exitCode;
  }
  throw new UsageError(`unknown ca subcommand "${sub ?? ''}" (expected init or issue)`);
}

export async function versionCommand(args: readonly string[]): Promise<number> {
  parse(args, {});
  process.stdout.write(`meshgate ${MESHGATE_VERSION} (node ${process.version})\n`);
  return EXIT_OK;
}
