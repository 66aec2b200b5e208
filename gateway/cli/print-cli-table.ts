/** `npm run cli-table`: prints the README's CLI table, generated from commands-spec.ts, to paste between the cli-table markers. */
import { readmeCliTable } from './commands-spec.js';

process.stdout.write(`${readmeCliTable()}\n`);
