/**
 * Scale of config: the same hot route in a 10-rule table and in a 10 000-rule table over 1 000 hosts
 * (side by side, CPU per request), and how long the large table takes to load and compile — the work
 * a reload does before the new snapshot serves. The compile runs in this process (not pinned): the
 * first one (as at a start) and three more (as reloads), reporting wall and CPU time, so a reload's
 * cost can be read without the process start-up around it.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import pino from 'pino';
import { compileConfig } from '../gateway/snapshot/snapshot.js';
import { routeRuleCount, writeIngressConfig } from './config.js';
import type { RouteTableShape } from './config.js';

export const SMALL_TABLE_TARGET = 'meshgate-10-rules';
export const LARGE_TABLE_TARGET = 'meshgate-10k-rules';

/** The hot host's 8 decoys, its canary route and its catch-all: 10 rules. */
export const SMALL_TABLE: RouteTableShape = { serviceHosts: 0, rulesPerServiceHost: 10, hotHostDecoys: 8 };
/** The same hot host plus 999 hosts of 10 rules each: 10 000 rules over 1 000 hosts. */
export const LARGE_TABLE: RouteTableShape = { serviceHosts: 999, rulesPerServiceHost: 10, hotHostDecoys: 8 };

export interface CompileTiming {
  readonly rules: number;
  /** The first compile in this process: nothing compiled by the JIT yet, no RE2 program cached (a start). */
  readonly first: { readonly wallMs: number; readonly cpuMs: number };
  /** The timed runs after it (a reload). */
  readonly wallMs: readonly number[];
  readonly cpuMs: readonly number[];
}

const REPETITIONS = 3;

export async function measureLargeTableCompile(workDirectory: string): Promise<CompileTiming> {
  const directory = join(workDirectory, 'compile-10k');
  await mkdir(directory, { recursive: true });
  const path = await writeIngressConfig({ directory, upstreamPorts: [1, 2], listenerPort: 3, adminPort: 4, tls: null, table: LARGE_TABLE });
  const logger: Logger = pino({ level: 'silent' });
  const once = async (): Promise<{ wallMs: number; cpuMs: number }> => {
    const [wallStart, cpuStart] = [performance.now(), process.cpuUsage()];
    const result = await compileConfig(path, { mode: 'ingress', plugins: [], logger });
    if (!result.ok) throw new Error(`the 10k-rule config does not compile: ${result.diagnostics[0]?.message ?? 'unknown'}`);
    const cpu = process.cpuUsage(cpuStart);
    return { wallMs: performance.now() - wallStart, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  const first = await once();
  const runs: { wallMs: number; cpuMs: number }[] = [];
  for (let repetition = 0; repetition < REPETITIONS; repetition++) runs.push(await once());
  return { rules: routeRuleCount(LARGE_TABLE), first, wallMs: runs.map((run) => run.wallMs), cpuMs: runs.map((run) => run.cpuMs) };
}
