import { readFile } from 'node:fs/promises';

/**
 * The complete JSON lines of a file another process (or the access log's asynchronous writer) is
 * appending to: a read can see a write half done, so the text after the last newline is left for the
 * next read. A missing file has no lines yet.
 */
export async function readCompleteJsonLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
