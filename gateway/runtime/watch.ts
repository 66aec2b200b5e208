/**
 * Watches the config's DIRECTORY, not the file: editors save by rename and Kubernetes ConfigMaps swap a
 * `..data` symlink, both of which a file watch misses. Any change triggers a (debounced) reload; the
 * reload itself skips work when the content hash is unchanged.
 */
import { watch, statSync } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

export interface ConfigWatcher {
  close(): void;
}

export function watchConfig(configPath: string, onChange: () => void, debounceMs = 150): ConfigWatcher {
  const directory = statSync(configPath).isDirectory() ? configPath : dirname(configPath);
  let timer: NodeJS.Timeout | undefined;
  const watcher: FSWatcher = watch(directory, { persistent: false }, () => {
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
