/**
 * Watches the DIRECTORIES of the files a proxy reads (its config, certificates), not the files: editors
 * save by rename and Kubernetes ConfigMaps swap a `..data` symlink, both of which a file watch misses.
 * Only events naming a watched file (or `..data`) trigger the (debounced) reload, so that other files
 * in the same directory do not: an access log written next to the config would otherwise restart the
 * debounce on every batch and recompile the whole config whenever it paused. The reload itself skips
 * work when the content hash is unchanged.
 */
import { watch, statSync } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isConfigFileName } from './load.js';

export interface ConfigWatcher {
  close(): void;
}

/** The symlink a Kubernetes ConfigMap or Secret volume swaps atomically on every update. */
const KUBERNETES_DATA_LINK = '..data';

function watchDirectory(directory: string, isWatched: (name: string) => boolean, onChange: () => void, debounceMs: number): ConfigWatcher {
  let timer: NodeJS.Timeout | undefined;
  const watcher: FSWatcher = watch(directory, { persistent: false }, (_event, filename) => {
    // No name: the platform could not say which file changed, so it may be ours.
    if (filename !== null && filename !== KUBERNETES_DATA_LINK && !isWatched(filename)) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  watcher.on('error', () => {
    /* the directory vanished mid-swap; the next successful event or SIGHUP reloads */
  });
  return {
    close(): void {
      if (timer !== undefined) clearTimeout(timer);
      watcher.close();
    },
  };
}

/** A config file, or every config file (`*.yaml|*.yml|*.json`) of a config directory. */
export function watchConfig(configPath: string, onChange: () => void, debounceMs = 150): ConfigWatcher {
  if (statSync(configPath).isDirectory()) return watchDirectory(configPath, isConfigFileName, onChange, debounceMs);
  const name = basename(configPath);
  return watchDirectory(dirname(configPath), (changed) => changed === name, onChange, debounceMs);
}

/** These files (e.g. a certificate, its key and its CA), one watch per directory they are in. */
export function watchFiles(paths: readonly string[], onChange: () => void, debounceMs = 150): ConfigWatcher {
  const namesByDirectory = new Map<string, Set<string>>();
  for (const path of paths) {
    const names = namesByDirectory.get(dirname(path)) ?? new Set<string>();
    names.add(basename(path));
    namesByDirectory.set(dirname(path), names);
  }
  const watchers = [...namesByDirectory].map(([directory, names]) => watchDirectory(directory, (changed) => names.has(changed), onChange, debounceMs));
  return {
    close(): void {
      for (const watcher of watchers) watcher.close();
    },
  };
}
