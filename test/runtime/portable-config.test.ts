/**
 * The config as it crosses to worker threads (portable-config.ts): a worker's compile from the
 * supervisor's read gives the same IR as a compile from the files, and a reload that changed one
 * document serialises and deserialises that document only.
 */
import { appendFile, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import t from 'tap';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import { describeIr } from '../../gateway/runtime/describe-ir.js';
import { compilePortable, toPortable } from '../../gateway/runtime/portable-config.js';
import type { PortableConfig } from '../../gateway/runtime/portable-config.js';
import { compileConfig } from '../../gateway/runtime/snapshot.js';
import type { CompiledConfig } from '../../gateway/runtime/snapshot.js';
import { REPO_ROOT } from '../e2e-foundation/fixtures.js';
import { configDir } from '../helpers/gateway.js';

const goldenDir = join(REPO_ROOT, 'test', 'golden-ir');

/** What a worker receives: the config after a trip through postMessage. */
function posted(config: PortableConfig): PortableConfig {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(config);
  const received = receiveMessageOnPort(port2)?.message as PortableConfig;
  port1.close();
  return received;
}

async function compiled(path: string, options: { mode: 'ingress' | 'sidecar'; workloadName?: string }): Promise<CompiledConfig> {
  const result = await compileConfig(path, { ...options, plugins: PIPELINE_PLUGINS });
  if (!result.ok) throw new Error(`${path} does not compile: ${result.diagnostics.map((d) => d.message).join('; ')}`);
  return result.config;
}

for (const input of (await readdir(goldenDir)).filter((name) => name.endsWith('.in.yaml')).sort()) {
  t.test(`${input}: a worker compiles the same IR from the supervisor's read`, async (t) => {
    const path = join(goldenDir, input);
    const header = /^# golden-ir: mode=(ingress|sidecar)(?: workload=(\S+))?$/.exec((await readFile(path, 'utf8')).split('\n')[0] ?? '');
    if (header === null) throw new Error(`${input} has no golden-ir header`);
    const options = { mode: header[1] as 'ingress' | 'sidecar', ...(header[2] === undefined ? {} : { workloadName: header[2] }) };
    const fromFiles = await compiled(path, options);
    const inWorker = await compilePortable(posted(await toPortable(fromFiles)), path, { ...options, plugins: PIPELINE_PLUGINS });
    if (!inWorker.ok) return t.fail(`the worker's compile failed: ${inWorker.diagnostics.map((d) => d.message).join('; ')}`);
    t.same(describeIr({ ...inWorker.config, diagnostics: fromFiles.diagnostics }, goldenDir), describeIr(fromFiles, goldenDir), "with the supervisor's diagnostics, as a commit gives them");
    t.equal(inWorker.config.hash, fromFiles.hash, 'the same hash: the supervisor commits it');
  });
}

t.test('a reload that changed one document moves and deserialises that document only', async (t) => {
  const documents = Array.from(
    { length: 5 },
    (_, index) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: se-${index}, namespace: default }
spec: { hosts: [s${index}.example.com], ports: [{ number: 80, name: http, protocol: HTTP }], resolution: DNS }
`,
  );
  const config = await configDir(documents.join('---\n'));
  t.teardown(() => config.remove());
  const options = { mode: 'ingress' as const, plugins: PIPELINE_PLUGINS };
  const first = await toPortable(await compiled(config.file, options));
  const inFirst = await compilePortable(posted(first), config.file, options);
  await appendFile(config.file, '  # the last document changed\n');
  const second = await toPortable(await compiled(config.file, options));
  t.equal(first.resources.batches.length, 1);
  t.equal(second.resources.batches.length, 2, 'the unchanged documents still in the first batch, the changed one in a new one');
  t.ok(second.resources.batches[1]!.byteLength < first.resources.batches[0]!.byteLength / 3, 'which holds one document');
  const inSecond = await compilePortable(posted(second), config.file, options);
  if (!inFirst.ok || !inSecond.ok) return t.fail('does not compile');
  const specs = (result: CompiledConfig): unknown[] => result.resources.map((resource) => resource.spec);
  const [before, after] = [specs(inFirst.config), specs(inSecond.config)];
  t.same(after, before, 'the same content');
  t.same(
    before.map((spec, index) => spec === after[index]),
    [true, true, true, true, false],
    'the worker reused what it deserialised before; only the changed document is a new object',
  );
});
