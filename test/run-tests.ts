/**
 * `npm test`: runs tap with the TAP reporter and ends with the one line CI reads,
 * `N passed, N failed` (tap's own summary is not recognised there). Extra arguments go to tap.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const tapBin = join(dirname(createRequire(import.meta.url).resolve('tap/package.json')), 'dist/esm/run.mjs');
const child = spawn(process.execPath, [tapBin, '--reporter=tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });

let summary = { total: 0, pass: 0, fail: 0 };
let tail = '';
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString('utf8')).slice(-4096);
  const match = /^# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/m.exec(tail);
  if (match !== null) summary = { total: Number(match[1]), pass: Number(match[2] ?? 0), fail: Number(match[3] ?? 0) };
});

child.on('close', (code) => {
  const failed = code === 0 ? summary.fail : Math.max(summary.fail, summary.total - summary.pass, 1);
  process.stdout.write(`\n${summary.pass} passed, ${failed} failed\n`);
  process.exit(code ?? 1);
});
