/** Argument parsing shared by the commands: one wording for every usage mistake. */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { LISTEN_ADDRESS_PATTERN } from '../config/kinds/mesh-config.js';
import type { ProxyMode } from '../pipeline/types.js';
import { UsageError } from './usage.js';

export type Values = Record<string, string | boolean | string[] | undefined>;

export function parse(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): Values {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values as Values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function configPath(values: Values): string {
  const path = values.config;
  if (typeof path !== 'string' || path === '') throw new UsageError('missing -c/--config <file|dir>');
  if (!existsSync(path)) throw new UsageError(`config path does not exist: ${path}`);
  return path;
}

export function proxyMode(values: Values): ProxyMode {
  const mode = values.mode ?? 'ingress';
  if (mode !== 'ingress' && mode !== 'sidecar') throw new UsageError(`--mode must be ingress or sidecar, got "${String(mode)}"`);
  return mode;
}

const LISTEN_ADDRESS = new RegExp(LISTEN_ADDRESS_PATTERN);

/** A `--<flag> HOST:PORT` listener address; an empty value turns that listener off. */
export function listenAddress(values: Values, flag: string): string | undefined {
  const value = values[flag];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !LISTEN_ADDRESS.test(value)) throw new UsageError(`--${flag} must be HOST:PORT or empty (off), got "${String(value)}"`);
  return value;
}

export const CONFIG_OPTIONS = {
  config: { type: 'string', short: 'c' },
  mode: { type: 'string' },
  workload: { type: 'string' },
} as const;
