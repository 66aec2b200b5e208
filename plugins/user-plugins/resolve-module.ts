/**
 * Where a plugin's `url` points: a file URL, a path (relative to the config's directory), or an
 * installed package resolved from the config's directory the way Node resolves an ESM import of it
 * (`exports` with the node/import/default conditions, else `main`, else index.js).
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ResolvedModule = { readonly ok: true; readonly file: string; readonly kind: 'file' | 'package' } | { readonly ok: false; readonly reason: string };

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const PACKAGE_NAME = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i;
const CONDITIONS = ['node', 'import', 'default'] as const;

export async function resolvePluginModule(url: string, configDirectory: string): Promise<ResolvedModule> {
  if (url.startsWith('file:')) {
    try {
      return { ok: true, file: fileURLToPath(url), kind: 'file' };
    } catch (error) {
      return { ok: false, reason: `not a file URL: ${(error as Error).message}` };
    }
  }
  if (url.startsWith('./') || url.startsWith('../') || isAbsolute(url)) return { ok: true, file: resolve(configDirectory, url), kind: 'file' };
  if (URL_SCHEME.test(url)) {
    return { ok: false, reason: `unsupported URL scheme in "${url}": meshgate loads ES modules from file:// URLs, paths and installed packages (not Wasm from oci:// or http(s)://)` };
  }
  if (!PACKAGE_NAME.test(url)) return { ok: false, reason: `"${url}" is neither a path (start it with ./ or /) nor a package name` };
  return resolvePackage(url, configDirectory);
}

async function resolvePackage(name: string, configDirectory: string): Promise<ResolvedModule> {
  for (let directory = resolve(configDirectory); ; directory = dirname(directory)) {
    const packageDirectory = join(directory, 'node_modules', name);
    const manifest = await readFile(join(packageDirectory, 'package.json'), 'utf8').catch(() => null);
    if (manifest !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(manifest);
      } catch (error) {
        return { ok: false, reason: `${join(packageDirectory, 'package.json')} is not JSON: ${(error as Error).message}` };
      }
      const entry = packageEntry(parsed);
      if (entry === null) return { ok: false, reason: `package "${name}" (${packageDirectory}) exports no "." entry for import` };
      return { ok: true, file: resolve(packageDirectory, entry), kind: 'package' };
    }
    if (dirname(directory) === directory) break;
  }
  return { ok: false, reason: `package "${name}" not found in node_modules of ${configDirectory} or any parent directory` };
}

function packageEntry(manifest: unknown): string | null {
  if (typeof manifest !== 'object' || manifest === null) return null;
  const { exports, main } = manifest as { exports?: unknown; main?: unknown };
  if (exports !== undefined) {
    const root = typeof exports === 'object' && exports !== null && Object.keys(exports).some((key) => key.startsWith('.')) ? (exports as Record<string, unknown>)['.'] : exports;
    return conditionalTarget(root);
  }
  return typeof main === 'string' ? main : 'index.js';
}

function conditionalTarget(target: unknown): string | null {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const candidate of target) {
      const found = conditionalTarget(candidate);
      if (found !== null) return found;
    }
    return null;
  }
  if (typeof target !== 'object' || target === null) return null;
  const conditions = target as Record<string, unknown>;
  for (const [condition, value] of Object.entries(conditions)) {
    if ((CONDITIONS as readonly string[]).includes(condition)) {
      const found = conditionalTarget(value);
      if (found !== null) return found;
    }
  }
  return null;
}
