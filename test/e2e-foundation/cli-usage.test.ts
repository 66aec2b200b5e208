/**
 * The `meshgate` binary's other contracts: usage mistakes exit 2 with a message saying what is wrong,
 * `--help` and the README's table come from the one command definition, `version` prints the version,
 * `--workload` means a sidecar, and `run` refuses an invalid config (exit 1) without opening a port.
 */
import t from 'tap';
import { configDir, freePort } from '../helpers/gateway.js';
import { MESHGATE_VERSION } from '../../gateway/version.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMMANDS, readmeCliTable, synopsis } from '../../gateway/cli/commands-spec.js';
import { accepts, invalidIngressYaml, REPO_ROOT, runCli } from './fixtures.js';

const SEED = 'config/examples/seed-istio.yaml';

t.test('usage mistakes exit 2 with a message saying what is wrong', async (t) => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ['validate', '-c', SEED, '--frobnicate'], message: /meshgate validate: unknown option --frobnicate \(its options: --config, --output, --strict, --mode, --workload\)/ },
    { args: ['demo', '--port', '8443'], message: /meshgate demo: unknown option --port \(its options: --config\)/ },
    { args: ['run', '-c', SEED, '--log-level', 'verbose'], message: /--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/ },
    { args: ['run', '-c', SEED, '--mode', 'ingress', '--workload', 'my-app/product-v1'], message: /--workload names a sidecar; it cannot be combined with --mode ingress/ },
    { args: ['ca', 'issue', '--dir', 'x'], message: /meshgate ca issue: missing --namespace <ns>/ },
    { args: ['ca', 'renew'], message: /meshgate ca: unknown ca subcommand "renew" \(expected init or issue\)/ },
    { args: ['validate'], message: /meshgate validate: missing -c\/--config <file\|dir>/ },
    { args: ['run'], message: /meshgate run: missing -c\/--config/ },
    { args: ['frobnicate'], message: /meshgate: unknown command "frobnicate"/ },
    { args: ['validate', '-c', SEED, '--output', 'xml'], message: /--output must be text or json, got "xml"/ },
    { args: ['validate', '-c', SEED, '--mode', 'edge'], message: /--mode must be ingress or sidecar, got "edge"/ },
  ];
  const [bare, ...results] = await Promise.all([runCli([]), ...cases.map(({ args }) => runCli(args))]);
  for (const [index, { args, message }] of cases.entries()) {
    const { code, stderr } = results[index];
    t.equal(code, 2, args.join(' '));
    t.match(stderr, message, args.join(' '));
    t.match(stderr, /Usage:/, 'usage follows the message');
  }
  t.equal(bare.code, 2, 'no command at all');
  t.match(bare.stdout, /Usage:/);
});

t.test('version and --version print the version', async (t) => {
  for (const args of [['version'], ['--version']]) {
    const { code, stdout } = await runCli(args);
    t.equal(code, 0);
    t.match(stdout, new RegExp(`^meshgate ${MESHGATE_VERSION.replace(/\./g, '\\.')} \\(node v\\d+`), args.join(' '));
  }
});

t.test('a config path that does not exist is the MG0001 diagnostic (exit 1), not the usage', async (t) => {
  for (const command of ['validate', 'run']) {
    const { code, stdout, stderr } = await runCli([command, '-c', 'config/examples/no-such-file.yaml']);
    t.equal(code, 1, command);
    t.match(stdout + stderr, /config\/examples\/no-such-file\.yaml:1:1 MG0001: cannot read config\/examples\/no-such-file\.yaml/, command);
    t.notMatch(stdout + stderr, /Usage:/, command);
  }
});

t.test('--help: every command documents exactly the options its parser accepts, with an example', async (t) => {
  const general = await runCli(['--help']);
  t.equal(general.code, 0);
  for (const spec of COMMANDS) {
    t.ok(general.stdout.includes(`  ${synopsis(spec)}\n`), `meshgate --help lists ${spec.name}`);
    const help = await runCli([...spec.name.split(' '), '--help']);
    t.equal(help.code, 0, `${spec.name} --help`);
    t.match(help.stdout, `Example:\n  ${spec.example}\n`, `${spec.name} has an example`);
    for (const option of spec.options) t.match(help.stdout, `--${option.name}`, `${spec.name} --help lists --${option.name}`);
  }
  const demo = await runCli(['demo', '--help']);
  t.notMatch(demo.stdout, /--port/, 'demo has no --port');
  t.match(demo.stdout, /-c, --config <dir>/);
  const ca = await runCli(['ca', 'init', '--help']);
  t.match(ca.stdout, /--force +overwrite an existing CA/);
  const explain = await runCli(['explain', '--help']);
  t.match(explain.stdout, /--source-ip <ip>/);
});

t.test('the README CLI table is the one generated from the command definitions', async (t) => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const match = /<!-- cli-table:start -->\n([\s\S]*?)<!-- cli-table:end -->/.exec(readme);
  t.ok(match, 'README has the cli-table markers');
  const expected = `${readmeCliTable()}\n`;
  t.equal(match?.[1], expected, `README's CLI table is stale; run \`npm run cli-table\` and paste its output between the markers:\n${expected}`);
  t.match(readme, /--workload <\[namespace\/\]name>/, 'README and usage agree on the --workload form');
});

t.test('--workload implies the sidecar view; an unknown workload fails naming the WorkloadEntries that exist', async (t) => {
  const existing = /no WorkloadEntry named "does-not-exist" describes this sidecar \(WorkloadEntries: my-app\/product-v1, my-app\/product-v2, my-app\/order-service\)/;
  const validate = await runCli(['validate', '-c', 'config/demo', '--workload', 'does-not-exist']);
  t.equal(validate.code, 1);
  t.match(validate.stdout, existing);
  t.notMatch(validate.stdout, /MG0904/, 'no cascaded "no Sidecar selects" error');
  const run = await runCli(['run', '-c', 'config/demo', '--workload', 'does-not-exist']);
  t.equal(run.code, 1, 'run refuses to start');
  t.match(run.stderr, existing);
  const valid = await runCli(['validate', '-c', 'config/demo', '--workload', 'my-app/product-v1']);
  t.equal(valid.code, 0, valid.stdout);
  const explain = await runCli(['explain', '-c', 'config/demo', '--workload', 'my-app/product-v1', '--principal', 'cluster.local/ns/istio-system/sa/istio-ingressgateway', '--path', '/api/products/1']);
  t.equal(explain.code, 0, explain.stderr);
  t.match(explain.stdout, /^DENY\n/, 'the sidecar of product-v1 denies the ingress on /api/products/*');
});

t.test('run on an invalid config exits 1, lists the problems and opens no port', async (t) => {
  const adminPort = await freePort();
  const gatewayPort = await freePort();
  const dir = await configDir(invalidIngressYaml({ adminPort, gatewayPort, upstreamPort: 9 }));
  t.teardown(() => dir.remove());
  const { code, stderr } = await runCli(['run', '-c', dir.file]);
  t.equal(code, 1);
  t.match(stderr, new RegExp(`${dir.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ MG0203 VirtualService default/app: spec\\.http\\[0\\]\\.route\\[0\\]\\.destination\\.subset: no DestinationRule for host "app.example.internal" defines subset "missing"`));
  t.match(stderr, /refusing to start on an invalid configuration/);
  t.equal(await accepts(adminPort), false, 'admin port never opened');
  t.equal(await accepts(gatewayPort), false, 'gateway port never opened');
});
