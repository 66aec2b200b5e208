#!/usr/bin/env node
/**
 * `meshgate` entry point: finds the command in its definition (commands-spec.ts), parses its options
 * against it, and turns usage mistakes into exit code 2. Each command's module is imported on use, so
 * a sidecar does not load (and keep in memory) the CA, demo and explain code, nor `validate` the proxy's.
 */
import { parse } from './args.js';
import type { CommandSpec } from './args.js';
import { commandGroup, commandUsage, findCommand, generalUsage, synopsis } from './commands-spec.js';
import { EXIT_OK, EXIT_USAGE, UsageError } from './usage.js';
import { holdYoungGeneration } from '../runtime/young-generation.js';

function usageError(prefix: string, message: string, specs: readonly CommandSpec[]): number {
  const lines = [`${prefix}: ${message}`, '', 'Usage:', ...specs.map((spec) => `  ${synopsis(spec)}`), ''];
  const help = specs.length === 1 ? `meshgate ${specs[0]?.name ?? ''} --help` : 'meshgate --help';
  process.stderr.write(`${lines.join('\n')}Run \`${help}\` for details.\n`);
  return EXIT_USAGE;
}

async function main(argv: readonly string[]): Promise<number> {
  const [first] = argv;
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && argv.length === 1)) {
    process.stdout.write(generalUsage());
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === 'help') {
    const found = findCommand(argv.slice(1));
    if (found === undefined) return usageError('meshgate help', `unknown command "${argv.slice(1).join(' ')}"`, []);
    process.stdout.write(commandUsage(found.spec));
    return EXIT_OK;
  }
  const found = findCommand(first === '--version' ? ['version'] : argv);
  if (found === undefined) {
    const group = commandGroup(first);
    if (group.length > 0) {
      if (argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(group.map(commandUsage).join('\n'));
        return EXIT_OK;
      }
      const expected = group.map((spec) => spec.name.split(' ').slice(1).join(' ')).join(' or ');
      return usageError(`meshgate ${first}`, `unknown ${first} subcommand "${argv[1] ?? ''}" (expected ${expected})`, group);
    }
    process.stderr.write(`meshgate: unknown command "${first}"\n\n${generalUsage()}`);
    return EXIT_USAGE;
  }
  const { spec, rest } = found;
  try {
    const values = parse(rest, spec);
    if (values.help === true) {
      process.stdout.write(commandUsage(spec));
      return EXIT_OK;
    }
    // Before the command's modules load: see young-generation.ts (`run` releases it once ready).
    holdYoungGeneration();
    const command = await spec.load();
    return await command(values);
  } catch (error) {
    if (error instanceof UsageError) return usageError(`meshgate ${spec.name}`, error.message, [spec]);
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`meshgate: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
