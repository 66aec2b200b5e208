/**
 * Every MG15xx diagnostic (and the schema's unknown phase), through the same compile path as `run`
 * and `validate`, each at the file:line of the field at fault; and `meshgate validate` loading the
 * module itself.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { configDir } from '../helpers/gateway.js';
import { exampleUrl, fixtureUrl, gatewayConfig, pluginYaml, shopRoutes } from './support.js';

const BASE = gatewayConfig(15000, 8080, 9090, shopRoutes('    - name: main\n      route: [{destination: {host: app.internal}}]\n'));

interface Case {
  readonly name: string;
  readonly plugin: string;
  readonly code: string;
  /** The diagnostic points at the first line containing this text. */
  readonly at: string;
  readonly message: RegExp;
  readonly files?: Readonly<Record<string, string>>;
}

async function diagnose(yaml: string, files: Readonly<Record<string, string>> = {}): Promise<{ diagnostics: readonly Diagnostic[]; file: string; text: string }> {
  const dir = await configDir(yaml);
  try {
    for (const [name, content] of Object.entries(files)) {
      await mkdir(join(dir.dir, name, '..'), { recursive: true });
      await writeFile(join(dir.dir, name), content);
    }
    const result = await compileConfig(dir.file, { mode: 'ingress', plugins: PIPELINE_PLUGINS });
    return { diagnostics: result.ok ? result.config.diagnostics : result.diagnostics, file: dir.file, text: yaml };
  } finally {
    await dir.remove();
  }
}

function lineOf(text: string, needle: string): number {
  const index = text.indexOf(needle);
  return index < 0 ? -1 : text.slice(0, index).split('\n').length;
}

const probeSha = createHash('sha256').update(await readFile(fileURLToPath(fixtureUrl('probe')))).digest('hex');

const cases: Case[] = [
  { name: 'missing file', plugin: pluginYaml({ name: 'p', url: './missing.js' }), code: 'MG1501', at: 'url:', message: /cannot read plugin module .*missing\.js: ENOENT/ },
  { name: 'Wasm from a registry', plugin: pluginYaml({ name: 'p', url: 'oci://ghcr.io/x/y:1' }), code: 'MG1501', at: 'url:', message: /unsupported URL scheme/ },
  { name: 'package not installed', plugin: pluginYaml({ name: 'p', url: 'no-such-plugin-package' }), code: 'MG1501', at: 'url:', message: /package "no-such-plugin-package" not found/ },
  {
    name: 'module throws while loading',
    plugin: pluginYaml({ name: 'p', url: './throws.mjs' }),
    files: { 'throws.mjs': 'throw new Error("top-level failure");\n' },
    code: 'MG1501',
    at: 'url:',
    message: /cannot import .*throws\.mjs: top-level failure/,
  },
  {
    name: 'no onRequest',
    plugin: pluginYaml({ name: 'p', url: './nohook.mjs' }),
    files: { 'nohook.mjs': 'export default { compile() {} };\n' },
    code: 'MG1502',
    at: 'url:',
    message: /no onRequest function/,
  },
  {
    name: 'future API version',
    plugin: pluginYaml({ name: 'p', url: './v2.mjs' }),
    files: { 'v2.mjs': 'export default { apiVersion: 2, onRequest() {} };\n' },
    code: 'MG1502',
    at: 'url:',
    message: /apiVersion 2 is not supported/,
  },
  {
    name: 'config of the wrong type',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('probe'), config: '\n    label: 42' }),
    code: 'MG1503',
    at: 'label: 42',
    message: /must be a string, got 42/,
  },
  {
    name: 'config for a plugin without a schema',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('noop'), config: '{ unexpected: true }' }),
    code: 'MG1503',
    at: 'pluginConfig:',
    message: /takes no pluginConfig/,
  },
  {
    name: 'compile throws',
    plugin: pluginYaml({ name: 'p', url: './compile-throws.mjs' }),
    files: { 'compile-throws.mjs': 'export default { compile() { throw new Error("no luck"); }, onRequest() {} };\n' },
    code: 'MG1504',
    at: 'url:',
    message: /failed to compile its config: no luck/,
  },
  {
    name: 'compile reports a problem with a config field',
    plugin: pluginYaml({ name: 'p', url: exampleUrl('hmac-signing'), config: '\n    keyId: k1\n    secretFile: ./absent-secret' }),
    code: 'MG1504',
    at: 'secretFile:',
    message: /cannot read .*absent-secret: ENOENT/,
  },
  {
    name: 'metric with a reserved name',
    plugin: pluginYaml({ name: 'p', url: './metric.mjs' }),
    files: { 'metric.mjs': 'export default { compile(setup) { setup.metrics.counter({ name: "meshgate_mine_total", help: "x" }); }, onRequest() {} };\n' },
    code: 'MG1504',
    at: 'url:',
    message: /prefix reserved/,
  },
  {
    name: 'route target in phase AUTHN',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('noop'), phase: 'AUTHN', extra: '  targetRefs:\n    - kind: VirtualService\n      name: shop\n      namespace: default\n' }),
    code: 'MG1505',
    at: 'kind: VirtualService',
    message: /needs phase STATS or UNSPECIFIED_PHASE/,
  },
  {
    name: 'unknown Gateway target',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('noop'), extra: '  targetRefs:\n    - kind: Gateway\n      name: nowhere\n' }),
    code: 'MG1506',
    at: 'name: nowhere',
    message: /no Gateway istio-system\/nowhere/,
  },
  {
    name: 'unknown route rule',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('noop'), extra: '  targetRefs:\n    - kind: VirtualService\n      name: shop\n      namespace: default\n      sectionName: nosuchrule\n' }),
    code: 'MG1506',
    at: 'sectionName: nosuchrule',
    message: /has no http rule named "nosuchrule"/,
  },
  {
    name: 'checksum mismatch',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('probe'), config: '{ label: x }', extra: `  sha256: "${'0'.repeat(64)}"\n` }),
    code: 'MG1507',
    at: 'sha256:',
    message: new RegExp(`has sha256 ${probeSha}`),
  },
  {
    name: 'checksum of a package',
    plugin: pluginYaml({ name: 'p', url: 'pkg', extra: `  sha256: ${probeSha}\n` }),
    files: { 'node_modules/pkg/package.json': '{"name":"pkg","type":"module","main":"main.js"}', 'node_modules/pkg/main.js': 'export default { onRequest() {} };\n' },
    code: 'MG1507',
    at: 'sha256:',
    message: /is a package name/,
  },
  {
    name: 'selector and targetRefs',
    plugin: pluginYaml({ name: 'p', url: fixtureUrl('noop'), extra: '  selector: { matchLabels: { app: x } }\n  targetRefs:\n    - kind: Gateway\n      name: edge\n' }),
    code: 'MG1508',
    at: 'targetRefs:',
    message: /either selector or targetRefs/,
  },
  { name: 'unknown phase', plugin: pluginYaml({ name: 'p', url: fixtureUrl('noop'), phase: 'AUTHENTICATION' }), code: 'MG0104', at: 'phase:', message: /is not one of AUTHN, AUTHZ, STATS, UNSPECIFIED_PHASE/ },
];

for (const c of cases) {
  t.test(`${c.code}: ${c.name}`, async (t) => {
    const yaml = [BASE, c.plugin].join('\n');
    const { diagnostics, file, text } = await diagnose(yaml, c.files);
    const found = diagnostics.filter((d) => d.code === c.code);
    t.equal(found.length, 1, `one ${c.code} in ${JSON.stringify(diagnostics.map((d) => `${d.code} ${d.message}`))}`);
    const diagnostic = found[0];
    if (diagnostic === undefined) return;
    t.equal(diagnostic.severity, 'error');
    t.match(diagnostic.message, c.message);
    t.equal(diagnostic.position.file, file);
    const baseLines = BASE.split('\n').length;
    t.equal(diagnostic.position.line, baseLines + lineOf(c.plugin, c.at), `at the line of "${c.at}"`);
    t.ok(lineOf(text, c.at) > 0);
  });
}

t.test('a valid plugin compiles without diagnostics', async (t) => {
  const { diagnostics } = await diagnose([BASE, pluginYaml({ name: 'p', url: fixtureUrl('probe'), config: '{ label: ok }', extra: `  sha256: ${probeSha}\n` })].join('\n'));
  t.same(diagnostics.filter((d) => d.severity === 'error'), []);
});

t.test('meshgate validate loads the module and exits non-zero with file:line', async (t) => {
  const dir = await configDir([BASE, pluginYaml({ name: 'p', url: './missing.js' })].join('\n'));
  t.teardown(() => dir.remove());
  const main = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));
  const run = promisify(execFile);
  const error = (await run(process.execPath, [main, 'validate', '-c', dir.file]).then(
    () => null,
    (failure: unknown) => failure,
  )) as { code: number; stdout: string } | null;
  t.ok(error !== null, 'validate fails');
  t.equal(error?.code, 1);
  t.match(error?.stdout ?? '', new RegExp(`${dir.file}:\\d+:\\d+ .*MG1501`));
});
