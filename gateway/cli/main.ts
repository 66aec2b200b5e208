#!/usr/bin/env node
/**
 * `meshgate` entry point: dispatches to a command and turns usage mistakes into exit code 2.
 * Each command's module is imported on use, so a sidecar does not load (and keep in memory) the CA,
 * demo and explain code, nor `validate` the proxy's.
 */
import { EXIT_USAGE, USAGE, UsageError } from './usage.js';
import { holdYoungGeneration } from './young-generation.js';

type Command = (args: readonly string[]) => Promise<number>;

const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  run: async () => (await import('./run.js')).runCommand,
  validate: async () => (await import('./commands.js')).validateCommand,
  explain: async () => (await import('./commands.js')).explainCommand,
  ca: async () => (await import('./commands.js')).caCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  inject: async () => (await import('./inject.js')).injectCommand,
  version: async () => (await import('./commands.js')).versionCommand,
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const load = COMMANDS[name];
  if (load === undefined) {
    process.stderr.write(`meshgate: unknown command "${name}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  // Before the command's modules load: see young-generation.ts (`run` releases it once ready).
  holdYoungGeneration();
  const command = await load();
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
