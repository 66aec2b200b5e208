/**
 * The file watches behind hot reload (config, certificates): a change to a watched file, an
 * editor-style save (rename over it) and a Kubernetes `..data` swap trigger one debounced reload;
 * other files in the same directory (an access log, a swap file, notes) trigger nothing.
 */
import { watch as rawWatch, writeFileSync } from 'node:fs';
import { mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import type { Test } from 'tap';
import { watchConfig, watchFiles } from '../../gateway/config/watch.js';
import type { ConfigWatcher } from '../../gateway/config/watch.js';

/**
 * Long beside the microseconds between the events of one synchronous save (truncate, then write), so
 * that however loaded the machine, those are one reload; the waits below do not depend on it.
 */
const DEBOUNCE_MS = 250;
/** Only a broken watch takes this long; the sentinel's event normally arrives in milliseconds. */
const SENTINEL_DEADLINE_MS = 30_000;

async function scratch(t: Test): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-watch-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

function counting(t: Test, start: (onChange: () => void) => ConfigWatcher): { readonly count: () => number } {
  let changes = 0;
  const watcher = start(() => changes++);
  t.teardown(() => watcher.close());
  return { count: () => changes };
}

let sentinels = 0;

/** Resolves when a watch of `directory` opened now sees a file written after every earlier change. */
function sentinelSeen(directory: string): Promise<void> {
  const name = `sentinel-${++sentinels}.txt`;
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => {
      sentinelWatch.close();
      reject(new Error(`no event for ${name} in ${directory} within ${SENTINEL_DEADLINE_MS} ms`));
    }, SENTINEL_DEADLINE_MS);
    const sentinelWatch = rawWatch(directory, (_event, filename) => {
      if (filename !== name) return;
      clearTimeout(deadline);
      sentinelWatch.close();
      resolve();
    });
    writeFile(join(directory, name), '').catch(reject);
  });
}

/**
 * Resolves once the watcher under test has had every event of `directories` so far and run any reload
 * they armed. The sentinel's event comes from the same inotify watch, behind the earlier ones, so the
 * watcher under test has had those first; and any debounce it armed expires before a timer of the same
 * duration set afterwards (Node runs the timers of one duration in the order they were set).
 */
async function settled(...directories: string[]): Promise<void> {
  await Promise.all(directories.map(sentinelSeen));
  await delay(DEBOUNCE_MS);
}

t.test('a config file: its writes and renames over it reload; its neighbours do not', async (t) => {
  const directory = await scratch(t);
  const config = join(directory, 'mesh.yaml');
  await writeFile(config, 'a: 1\n');
  const watch = counting(t, (onChange) => watchConfig(config, onChange, DEBOUNCE_MS));

  for (let i = 0; i < 5; i++) await writeFile(join(directory, 'access.log'), `line ${i}\n`, { flag: 'a' });
  await writeFile(join(directory, 'other.yaml'), 'b: 1\n');
  await settled(directory);
  t.equal(watch.count(), 0, 'an access log and another yaml beside the config are not the config');

  writeFileSync(config, 'a: 2\n');
  await settled(directory);
  t.equal(watch.count(), 1, 'a write reloads once (debounced)');

  await writeFile(join(directory, '.mesh.yaml.swp'), 'x');
  await writeFile(join(directory, 'mesh.yaml.tmp'), 'a: 3\n');
  await rename(join(directory, 'mesh.yaml.tmp'), config);
  await settled(directory);
  t.equal(watch.count(), 2, 'an editor-style save (rename over the file) reloads');
});

t.test('a config directory: every config file reloads, other files do not', async (t) => {
  const directory = await scratch(t);
  await writeFile(join(directory, 'a.yaml'), 'a: 1\n');
  const watch = counting(t, (onChange) => watchConfig(directory, onChange, DEBOUNCE_MS));

  await writeFile(join(directory, 'access.log'), 'line\n');
  await writeFile(join(directory, 'README.txt'), 'notes\n');
  await writeFile(join(directory, '.a.yaml.swp'), 'x');
  await settled(directory);
  t.equal(watch.count(), 0);

  writeFileSync(join(directory, 'b.JSON'), '{}');
  await settled(directory);
  t.equal(watch.count(), 1, 'a new config file reloads');
});

t.test('a Kubernetes volume swap (the ..data symlink) reloads', async (t) => {
  const directory = await scratch(t);
  await writeFile(join(directory, 'v1'), 'a: 1\n');
  await symlink('v1', join(directory, '..data'));
  await writeFile(join(directory, 'mesh.yaml'), 'a: 1\n');
  const watch = counting(t, (onChange) => watchConfig(join(directory, 'mesh.yaml'), onChange, DEBOUNCE_MS));

  await symlink('v2', join(directory, '..data_tmp'));
  await rename(join(directory, '..data_tmp'), join(directory, '..data'));
  await settled(directory);
  t.equal(watch.count(), 1);
});

t.test('certificate files in two directories: each watched file reloads, the rest do not', async (t) => {
  const [first, second] = [await scratch(t), await scratch(t)];
  const paths = [join(first, 'cert.pem'), join(first, 'key.pem'), join(second, 'ca.pem')];
  for (const path of paths) await writeFile(path, 'pem\n');
  const watch = counting(t, (onChange) => watchFiles(paths, onChange, DEBOUNCE_MS));

  await writeFile(join(first, 'access.log'), 'line\n');
  await writeFile(join(second, 'other.pem'), 'pem\n');
  await settled(first, second);
  t.equal(watch.count(), 0);

  writeFileSync(join(second, 'ca.pem'), 'new ca\n');
  await settled(first, second);
  t.equal(watch.count(), 1);
  writeFileSync(join(first, 'key.pem'), 'new key\n');
  await settled(first, second);
  t.equal(watch.count(), 2);
});
