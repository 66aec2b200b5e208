import t from 'tap';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessLogWriter } from '../../plugins/access-log/writer.js';
import { StringField, emptyRawRecord } from '../../plugins/access-log/record.js';

/** A chunk of `count` records whose paths are `/${label}/0`, `/${label}/1`, ... */
function chunkOf(writer: AccessLogWriter, label: string, count: number) {
  const chunk = writer.chunk(1024);
  const record = emptyRawRecord();
  for (let index = 0; index < count; index++) {
    record.strings[StringField.path] = `/${label}/${index}`;
    if (!chunk.append(record, 'JSON')) throw new Error('test chunk too small');
  }
  return chunk;
}

t.test('concurrent stops, with chunks and flushes posted while they drain, all end with every line written once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-writer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  const fd = openSync(path, 'a');
  t.teardown(() => closeSync(fd));
  const writer = new AccessLogWriter();
  const expected: string[] = [];
  // Each round starts a new thread (the previous one was stopped) and races its end against late work.
  for (let round = 0; round < 12; round++) {
    writer.write(fd, path, chunkOf(writer, `r${round}a`, 3));
    const first = writer.stop();
    const second = writer.stop();
    writer.write(fd, path, chunkOf(writer, `r${round}b`, 2));
    const late = writer.flush();
    for (const label of [`r${round}a`, `r${round}b`]) for (let index = 0; index < (label.endsWith('a') ? 3 : 2); index++) expected.push(`/${label}/${index}`);
    // Each round starts a thread, which takes seconds on a loaded machine: the bound only catches a hang.
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 30 s'), 30_000).unref());
    const outcome = await Promise.race([Promise.all([first, second, late]).then(() => 'ended'), timeout]);
    if (outcome !== 'ended') return t.fail(`round ${round}: ${outcome}`);
  }
  const paths = (await readFile(path, 'utf8'))
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { path: string }).path);
  t.same(paths.sort(), expected.sort());
});
