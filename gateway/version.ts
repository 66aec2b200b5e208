import { readFileSync } from 'node:fs';

/** The package version, read once from package.json next to the compiled tree (dist/gateway → ../../). */
function readVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  if (typeof manifest === 'object' && manifest !== null && 'version' in manifest && typeof manifest.version === 'string') {
    return manifest.version;
  }
  return '0.0.0';
}

export const MESHGATE_VERSION = readVersion();
