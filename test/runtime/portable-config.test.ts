/**
 * The config as it crosses to worker threads (portable-config.ts): a worker's compile from the
 * supervisor's read gives the same IR as a compile from the files, its diagnostics placed by the
 * supervisor are the same as that compile's, to the field, and a reload that changed one document
 * serialises and deserialises that document only.
 */
import { appendFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import t from 'tap';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import { describeIr } from '../../gateway/snapshot/describe-ir.js';
import { compilePortable, placeDiagnostics, portableDiagnostics, toPortable } from '../../gateway/runtime/portable-config.js';
import { compileConfig, readConfig } from '../../gateway/snapshot/snapshot.js';
import type { CompiledConfig } from '../../gateway/snapshot/snapshot.js';
import { REPO_ROOT } from '../e2e-foundation/fixtures.js';
import { configDir } from '../helpers/gateway.js';

const goldenDir = join(REPO_ROOT, 'test', 'golden-ir');

/** What the other thread receives: a message after a trip through postMessage. */
function posted<Message>(message: Message): Message {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(message);
  const received = receiveMessageOnPort(port2)?.message as Message;
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
    const read = await readConfig(path, { ...options, plugins: PIPELINE_PLUGINS });
    if (!read.ok) return t.fail('the read failed');
    // Through postMessage, as a worker's answer to prepare travels.
    const answered = posted(portableDiagnostics(inWorker.config.diagnostics));
    const placed = [...read.read.diagnostics, ...placeDiagnostics(answered, read.read.resources)];
    t.same(placed, fromFiles.diagnostics, "the worker's diagnostics, placed by the supervisor, are the compile's: same fields, same positions");
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

t.test("a worker's reload keeps the routes of VirtualServices whose documents did not change", async (t) => {
  const virtualService = (name: string, destination: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.example.com]
  gateways: [public]
  http:
    - route: [{ destination: { host: ${destination} } }]
`;
  const gateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: public, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 8080, name: http, protocol: HTTP }, hosts: ['*'] }]
`;
  const config = await configDir([gateway, virtualService('kept', 'kept.internal'), virtualService('edited', 'v1.internal')].join('---\n'));
  t.teardown(() => config.remove());
  const options = { mode: 'ingress' as const, plugins: PIPELINE_PLUGINS };
  const inFirst = await compilePortable(posted(await toPortable(await compiled(config.file, options))), config.file, options);
  await writeFile(config.file, [gateway, virtualService('kept', 'kept.internal'), virtualService('edited', 'v2.internal')].join('---\n'));
  const inSecond = await compilePortable(posted(await toPortable(await compiled(config.file, options))), config.file, options);
  if (!inFirst.ok || !inSecond.ok) return t.fail('does not compile');
  const routeTo = (result: CompiledConfig, host: string): unknown => {
    const matched = result.gatewayRoutes.get(8080)?.match({ method: 'GET', authority: host, host, path: '/', query: '', scheme: 'http', port: 8080, headers: {} });
    return matched !== undefined && 'route' in matched ? matched.route : undefined;
  };
  t.ok(routeTo(inFirst.config, 'kept.example.com') !== undefined, 'routed');
  t.equal(routeTo(inSecond.config, 'kept.example.com'), routeTo(inFirst.config, 'kept.example.com'), 'the unchanged VirtualService: the route compiled before');
  t.not(routeTo(inSecond.config, 'edited.example.com'), routeTo(inFirst.config, 'edited.example.com'), 'the edited one: compiled anew');
});

t.test("an error only the closures' build finds (a plugin module that cannot be loaded) is placed at its field, as the files' compile places it", async (t) => {
  const config = await configDir(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: se, namespace: default }
spec: { hosts: [s.example.com], ports: [{ number: 80, name: http, protocol: HTTP }], resolution: DNS }
---
apiVersion: meshgate.dev/v1alpha1
kind: Plugin
metadata: { name: missing, namespace: istio-system }
spec:
  url: "file:///no-such-dir/no-such-plugin.mjs"
`);
  t.teardown(() => config.remove());
  const options = { mode: 'ingress' as const, plugins: PIPELINE_PLUGINS };
  const fromFiles = await compileConfig(config.file, options);
  const read = await readConfig(config.file, options);
  if (fromFiles.ok || !read.ok) return t.fail('expected a config that reads but does not compile');
  const inWorker = await compilePortable(posted(await toPortable(read.read)), config.file, options);
  if (inWorker.ok) return t.fail("the worker's compile should fail too");
  const placed = [...read.read.diagnostics, ...placeDiagnostics(posted(portableDiagnostics(inWorker.diagnostics)), read.read.resources)];
  t.match(fromFiles.diagnostics, [{ code: 'MG1501', field: 'spec.url', position: { line: 10 } }]);
  t.same(placed, fromFiles.diagnostics, 'the same diagnostic, at the line of spec.url, not at the document start');
});
