/**
 * The `meshgate` binary's other contracts: usage mistakes exit 2 with a message saying what is wrong,
 * `version` prints the version, and `run` refuses an invalid config (exit 1) without opening a port.
 */
import t from 'tap';
import { configDir, freePort } from '../helpers/gateway.js';
import { MESHGATE_VERSION } from '../../gateway/version.js';
import { accepts, invalidIngressYaml, runCli } from './fixtures.js';

// Every assertion waits on CLI children, each a Node start plus a config compile: on a loaded machine
// (load 20 on 2 cores) they take seconds each, more than the default per-file budget.
t.setTimeout(300_000);

const SEED = 'config/examples/seed-istio.yaml';

t.test('usage mistakes exit 2 with a message saying what is wrong', async (t) => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ['validate', '-c', SEED, '--frobnicate'], message: /meshgate validate: unknown option --frobnicate \(its options: --config, --output, --strict, --mode, --workload\)/ },
    { args: ['demo', '--port', '8443'], message: /meshgate demo: unknown option --port \(its options: --config, --dir\)/ },
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

t.test('run on an invalid config exits 1, lists the problems and opens no port', async (t) => {
  const adminPort = await freePort();
  const gatewayPort = await freePort();
  const dir = await configDir(invalidIngressYaml({ adminPort, gatewayPort, upstreamPort: 9 }));
  t.teardown(() => dir.remove());
  const { code, stderr } = await runCli(['run', '-c', dir.file]);
  t.equal(code, 1);
  t.match(stderr, new RegExp(`${dir.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ MG0207 VirtualService default/app: spec\\.http\\[0\\]\\.match\\[0\\]\\.uri\\.regex: invalid RE2 regex "\\(unclosed"`));
  t.match(stderr, /refusing to start on an invalid configuration/);
  t.equal(await accepts(adminPort), false, 'admin port never opened');
  t.equal(await accepts(gatewayPort), false, 'gateway port never opened');
});
