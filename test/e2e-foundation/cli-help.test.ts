/**
 * `meshgate --help`, `meshgate <command> --help` and the README's CLI table all come from the one
 * command definition (gateway/cli/commands-spec.ts): every option the parser accepts is documented,
 * none that it rejects is, and the README cannot drift.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { COMMANDS, readmeCliTable, synopsis } from '../../gateway/cli/commands-spec.js';
import { REPO_ROOT, runCli } from './fixtures.js';

// Every assertion waits on CLI children, each a Node start plus a config compile: on a loaded machine
// (load 20 on 2 cores) they take seconds each, more than the default per-file budget.
t.setTimeout(300_000);

// Started together (runCli runs two at a time), asserted one by one.
const helps = COMMANDS.map((spec) => runCli([...spec.name.split(' '), '--help']));

t.test('--help: every command documents exactly the options its parser accepts, with an example', async (t) => {
  const general = await runCli(['--help']);
  t.equal(general.code, 0);
  for (const [index, spec] of COMMANDS.entries()) {
    t.ok(general.stdout.includes(`  ${synopsis(spec)}\n`), `meshgate --help lists ${spec.name}`);
    const help = await helps[index];
    t.equal(help.code, 0, `${spec.name} --help`);
    t.match(help.stdout, `Example:\n  ${spec.example}\n`, `${spec.name} has an example`);
    for (const option of spec.options) t.match(help.stdout, `--${option.name}`, `${spec.name} --help lists --${option.name}`);
  }
  const help = async (name: string): Promise<string> => (await helps[COMMANDS.findIndex((spec) => spec.name === name)])?.stdout ?? '';
  t.notMatch(await help('demo'), /--port/, 'demo has no --port');
  t.match(await help('demo'), /-c, --config <dir>/);
  t.match(await help('ca init'), /--force +overwrite an existing CA/);
  t.match(await help('explain'), /--source-ip <ip>/);
});

t.test('the README CLI table is the one generated from the command definitions', async (t) => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const match = /<!-- cli-table:start -->\n([\s\S]*?)<!-- cli-table:end -->/.exec(readme);
  t.ok(match, 'README has the cli-table markers');
  const expected = `${readmeCliTable()}\n`;
  t.equal(match?.[1], expected, `README's CLI table is stale; run \`npm run cli-table\` and paste its output between the markers:\n${expected}`);
  t.match(readme, /--workload <\[namespace\/\]name>/, 'README and usage agree on the --workload form');
});

