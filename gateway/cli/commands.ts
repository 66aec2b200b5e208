/**
 * The CLI commands other than `run` (run.ts) and `demo` (demo.ts). Each returns an exit code.
 * `validate` compiles through the very function `run` starts from, so they can never disagree.
 */
import { formatDiagnostics, summarize } from '../config/format.js';
import { caInit, caIssue } from '../identity/ca-cli.js';
import { PIPELINE_PLUGINS } from '../pipeline/table.js';
import { compileConfig, discardCompiled } from '../runtime/snapshot.js';
import { describedRequestFrom } from '../runtime/explain-input.js';
import { MESHGATE_VERSION } from '../version.js';
import { CONFIG_OPTIONS, configPath, parse, proxyMode } from './args.js';
import { EXIT_INVALID, EXIT_OK, UsageError } from './usage.js';
import { AUTHZ_PLUGIN_NAME } from '../../plugins/authz/index.js';
import type { CompiledAuthz } from '../../plugins/authz/compile.js';
import { explainRequest } from '../../plugins/authz/explain.js';

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
  if (result.ok) discardCompiled(result.config.pluginStates, PIPELINE_PLUGINS);
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
  discardCompiled(result.config.pluginStates, PIPELINE_PLUGINS);
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
