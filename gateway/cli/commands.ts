/**
 * The CLI commands other than `run` (run.ts) and `demo` (demo.ts). Each returns an exit code.
 * `validate` compiles through the very function `run` starts from, so they can never disagree.
 */
import { formatDiagnostics, summarize } from '../config/format.js';
import { caInit, caIssue } from '../identity/ca-cli.js';
import { PIPELINE_PLUGINS } from '../composition/plugin-table.js';
import { compileConfig, discardCompiled } from '../snapshot/snapshot.js';
import { describedRequestFrom, EXPLAIN_REQUEST_FIELDS, jsonFieldName } from '../runtime/explain-input.js';
import { explainerOf } from '../runtime/plugin-capabilities.js';
import { MESHGATE_VERSION } from '../version.js';
import { configPath, proxyMode } from './args.js';
import type { Values } from './args.js';
import { EXIT_INVALID, EXIT_OK, UsageError } from './usage.js';

export async function validateCommand(values: Values): Promise<number> {
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

/** The explain options, renamed to the JSON field names admin `POST /explain` takes. */
function explainInput(values: Values): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const field of EXPLAIN_REQUEST_FIELDS) {
    const value = values[field.option];
    if (value !== undefined) input[jsonFieldName(field.option)] = value;
  }
  return input;
}

export async function explainCommand(values: Values): Promise<number> {
  const described = describedRequestFrom(explainInput(values));
  if (!described.ok) throw new UsageError(described.error);
  const explain = explainerOf(PIPELINE_PLUGINS);
  if (explain === null) throw new Error('no plugin of this build explains its decisions');
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
  const explanation = explain(result.config.pluginStates, described.request);
  process.stdout.write(`${explanation.decision}${explanation.policy === null ? '' : ` by ${explanation.policy} rule[${explanation.ruleIndex}]`}\n`);
  for (const line of explanation.trace) process.stdout.write(`  ${line}\n`);
  return EXIT_OK;
}

export async function caInitCommand(values: Values): Promise<number> {
  const result = await caInit({
    dir: values.dir as string,
    ...(typeof values['trust-domain'] === 'string' ? { trustDomain: values['trust-domain'] } : {}),
    ...(values.force === true ? { force: true } : {}),
  });
  process.stdout.write(`${result.message}\n`);
  return result.exitCode;
}

export async function caIssueCommand(values: Values): Promise<number> {
  const result = await caIssue({
    dir: values.dir as string,
    namespace: values.namespace as string,
    serviceAccount: values['service-account'] as string,
    ...(typeof values.out === 'string' ? { out: values.out } : {}),
  });
  process.stdout.write(`${result.message}\n`);
  return result.exitCode;
}

export async function versionCommand(): Promise<number> {
  process.stdout.write(`meshgate ${MESHGATE_VERSION} (node ${process.version})\n`);
  return EXIT_OK;
}
