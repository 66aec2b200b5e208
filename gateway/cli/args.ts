/** What a command's definition is (the table is commands-spec.ts), and the argument parsing the commands share, read from it. */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { LISTEN_ADDRESS_PATTERN } from '../config/kinds/mesh-config.js';
import type { ProxyMode } from '../pipeline/types.js';
import { UsageError } from './usage.js';

/** Parsed options by long name. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** Runs a command on its options, already parsed and checked against its definition; returns the exit code. */
type CommandHandler = (values: Values) => Promise<number>;

export interface OptionSpec {
  /** Long name, used as `--name`. */
  readonly name: string;
  readonly short?: string;
  /** Placeholder of the value (`<file|dir>`); absent for a flag. */
  readonly value?: string;
  readonly multiple?: boolean;
  readonly required?: boolean;
  readonly description: string;
  /** The value used when the option is absent, as the user would type it. */
  readonly default?: string;
}

export interface CommandSpec {
  /** As typed after `meshgate`: `run`, `ca init`. */
  readonly name: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  readonly example: string;
  readonly load: () => Promise<CommandHandler>;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function parseArgsOptions(spec: CommandSpec): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const option of spec.options) {
    options[option.name] = {
      type: option.value === undefined ? 'boolean' : 'string',
      ...(option.short === undefined ? {} : { short: option.short }),
      ...(option.multiple === true ? { multiple: true } : {}),
    };
  }
  options.help = { type: 'boolean', short: 'h' };
  return options;
}

function optionList(spec: CommandSpec): string {
  return spec.options.length === 0 ? 'it takes no options' : `its options: ${spec.options.map((option) => `--${option.name}`).join(', ')}`;
}

export function parse(args: readonly string[], spec: CommandSpec): Values {
  let values: Values;
  try {
    values = parseArgs({ args: [...args], options: parseArgsOptions(spec), strict: true, allowPositionals: false }).values as Values;
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec(message)?.[1] ?? message;
      throw new UsageError(`unknown option ${option} (${optionList(spec)})`);
    }
    throw new UsageError(message.split('\n')[0] ?? message);
  }
  if (values.help === true) return values;
  for (const option of spec.options) {
    if (option.required === true && values[option.name] === undefined) {
      throw new UsageError(`missing ${option.short === undefined ? '' : `-${option.short}/`}--${option.name} ${option.value ?? ''}`.trimEnd());
    }
  }
  return values;
}

/** The config path as given: one that does not exist is the loader's MG0001 diagnostic, not a usage error. */
export function configPath(values: Values): string {
  const path = values.config;
  if (typeof path !== 'string' || path === '') throw new UsageError('missing -c/--config <file|dir>');
  return path;
}

/** `--workload` names a sidecar, so it implies `--mode sidecar`; asking for an ingress with it is a contradiction. */
export function proxyMode(values: Values): ProxyMode {
  const workload = typeof values.workload === 'string';
  const mode = values.mode ?? (workload ? 'sidecar' : 'ingress');
  if (mode !== 'ingress' && mode !== 'sidecar') throw new UsageError(`--mode must be ingress or sidecar, got "${String(mode)}"`);
  if (mode === 'ingress' && workload) throw new UsageError('--workload names a sidecar; it cannot be combined with --mode ingress');
  return mode;
}

export function logLevel(values: Values): string {
  const level = values['log-level'] ?? 'info';
  if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${String(level)}"`);
  }
  return level;
}

/** `--concurrency N`: a whole number of worker threads, 1 to 256 (MeshConfig's bounds). */
export function concurrency(values: Values): number | undefined {
  const value = values.concurrency;
  if (value === undefined) return undefined;
  const workers = typeof value === 'string' && /^[1-9][0-9]*$/.test(value) ? Number(value) : Number.NaN;
  if (!(workers >= 1 && workers <= 256)) throw new UsageError(`--concurrency must be a whole number from 1 to 256, got "${String(value)}"`);
  return workers;
}

const LISTEN_ADDRESS = new RegExp(LISTEN_ADDRESS_PATTERN);

/** A `--<flag> HOST:PORT` listener address; an empty value turns that listener off. */
export function listenAddress(values: Values, flag: string): string | undefined {
  const value = values[flag];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !LISTEN_ADDRESS.test(value)) throw new UsageError(`--${flag} must be HOST:PORT or empty (off), got "${String(value)}"`);
  return value;
}
