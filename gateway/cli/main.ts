#!/usr/bin/env node
/** `meshgate` entry point: dispatches to a command and turns usage mistakes into exit code 2. */
import { caCommand, explainCommand, runCommand, validateCommand, versionCommand } from './commands.js';
import { demoCommand } from './demo.js';
import { EXIT_USAGE, USAGE, UsageError } from './usage.js';

const COMMANDS: Readonly<Record<string, (args: readonly string[]) => Promise<number>>> = {
  run: runCommand,
  validate: validateCommand,
  explain: explainCommand,
  ca: caCommand,
  demo: demoCommand,
  version: versionCommand,
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`meshgate: unknown command "${name}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  try {
    return await command(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`meshgate ${name}: ${error.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
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
