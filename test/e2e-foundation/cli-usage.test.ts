/**
 * The `meshgate` binary's other contracts: usage mistakes exit 2 with a message saying what is wrong,
 * `version` prints the version, and `run` refuses an invalid config (exit 1) without opening a port.
 */
import t from 'tap';
import { configDir, freePort } from '../helpers/gateway.js';
import { MESHGATE_VERSION } from '../../gateway/version.js';
import { accepts, invalidIngressYaml, runCli } from './fixtures.js';

const SEED = 'config/examples/seed-istio.yaml';

t.test('usage mistakes exit 2 with a message saying what is wrong', async (t) => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ['validate', '-c', SEED, '--frobnicate'], message: /meshgate validate: Unknown option '--frobnicate'/ },
    { args: ['validate'], message: /meshgate validate: missing -c\/--config <file\|dir>/ },
    { args: ['run'], message: /meshgate run: missing -c\/--config/ },
    { args: ['validate', '-c', 'config/examples/no-such-file.yaml'], message: /config path does not exist: config\/examples\/no-such-file\.yaml/ },
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

t.test('version prints the version', async (t) => {
  const { code, stdout } = await runCli(['version']);
  t.equal(code, 0);
  t.match(stdout, new RegExp(`^meshgate ${MESHGATE_VERSION.replace(/\./g, '\\.')} \\(node v\\d+`));
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
