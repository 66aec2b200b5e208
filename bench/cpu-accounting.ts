/**
 * Where the machine's CPUs go over a measured window: each named process tree's CPU (utime + stime from
 * /proc/<pid>/stat), the CPUs' idle and steal time (/proc/stat), and what is left — other tenants, kernel
 * threads and anything not named — so that the parts add up to the CPUs' whole capacity over the window.
 * Used by the Dapr pub/sub runs to show where the 2 vCPUs go at the measured rate (bench/README.md).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { median } from './median.js';
import { clockTicksPerSecond as systemClockTicks, processCpuMicros, treeCpuMicros } from './proc-stats.js';

/** Ticks of one CPU line of /proc/stat: user nice system idle iowait irq softirq steal (guest time is inside user). */
export interface CpuTicks {
  readonly total: number;
  /** idle + iowait: time the CPU had nothing to run. */
  readonly idle: number;
  /** Time the hypervisor gave this vCPU's turn to another guest. */
  readonly steal: number;
}

/** The `cpuN` lines of /proc/stat (not the `cpu` sum), by CPU number. */
export function parseCpuLines(text: string): Map<number, CpuTicks> {
  const cpus = new Map<number, CpuTicks>();
  for (const line of text.split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = (match[2] as string).trim().split(/\s+/).map(Number);
    cpus.set(Number(match[1]), { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, steal });
  }
  return cpus;
}

/** The pids whose command name (/proc/<pid>/comm) is `name`, e.g. RabbitMQ's `beam.smp`. */
export function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

export interface NamedProcess {
  readonly label: string;
  readonly pid: number;
  /** Read this process without its descendants: short-lived helpers (RabbitMQ's) would make a tree's sum drop when they exit. */
  readonly alone?: boolean;
}

export interface CpuSnapshot {
  /** CPU µs of each named process tree so far; null when it is gone or /proc is missing. */
  readonly processes: ReadonlyMap<string, number | null>;
  readonly cpus: ReadonlyMap<number, CpuTicks>;
}

export function takeSnapshot(processes: readonly NamedProcess[]): CpuSnapshot {
  const cpus = (() => {
    try {
      return parseCpuLines(readFileSync('/proc/stat', 'utf8'));
    } catch {
      return new Map<number, CpuTicks>();
    }
  })();
  return { processes: new Map(processes.map(({ label, pid, alone }) => [label, alone === true ? processCpuMicros(pid) : treeCpuMicros(pid)])), cpus };
}

export interface CpuPart {
  readonly label: string;
  readonly usPerMessage: number;
  /** Of the CPUs' whole capacity over the window (all parts add up to 1). */
  readonly share: number;
}

export interface CpuAccount {
  /** The CPUs' capacity per message: CPUs × window ÷ messages (≈ 2 000 000 / rate on 2 vCPUs). */
  readonly capacityUsPerMessage: number;
  /** The named processes, then `other` (busy time no named process accounts for), `steal` and `idle`. */
  readonly parts: readonly CpuPart[];
  /** Idle µs per message of each CPU, by CPU number. */
  readonly idleUsPerMessageByCpu: Readonly<Record<string, number>>;
}

export const OTHER_PART = 'other (tenants, kernel threads, unnamed)';
export const STEAL_PART = 'steal (hypervisor)';
export const IDLE_PART = 'idle';

/**
 * The window between two snapshots divided by `messages`. `extra` adds processes measured another way
 * (one that exited inside the window, whose CPU its parent read). Null without /proc.
 */
export function accountWindow(
  before: CpuSnapshot,
  after: CpuSnapshot,
  messages: number,
  extra: ReadonlyMap<string, number> = new Map(),
  clockTicksPerSecond = systemClockTicks,
): CpuAccount | null {
  if (after.cpus.size === 0 || messages <= 0) return null;
  const tickUs = 1_000_000 / clockTicksPerSecond;
  let capacityTicks = 0;
  let idleTicks = 0;
  let stealTicks = 0;
  const idleUsPerMessageByCpu: Record<string, number> = {};
  for (const [cpu, end] of after.cpus) {
    const start = before.cpus.get(cpu) ?? end;
    capacityTicks += end.total - start.total;
    idleTicks += end.idle - start.idle;
    stealTicks += end.steal - start.steal;
    idleUsPerMessageByCpu[String(cpu)] = ((end.idle - start.idle) * tickUs) / messages;
  }
  const capacityUs = capacityTicks * tickUs;
  if (capacityUs <= 0) return null;
  const named: [string, number][] = [];
  for (const [label, end] of after.processes) {
    const start = before.processes.get(label);
    named.push([label, end === null || start === null || start === undefined ? 0 : end - start]);
  }
  named.push(...extra);
  const namedUs = named.reduce((sum, [, us]) => sum + us, 0);
  const idleUs = idleTicks * tickUs;
  const stealUs = stealTicks * tickUs;
  // Never negative: tick sampling of the processes and of /proc/stat can disagree by a tick or two.
  const otherUs = Math.max(0, capacityUs - idleUs - stealUs - namedUs);
  const part = (label: string, us: number): CpuPart => ({ label, usPerMessage: us / messages, share: us / capacityUs });
  return {
    capacityUsPerMessage: capacityUs / messages,
    parts: [...named.map(([label, us]) => part(label, us)), part(OTHER_PART, otherUs), part(STEAL_PART, stealUs), part(IDLE_PART, idleUs)],
    idleUsPerMessageByCpu,
  };
}

/** One line per part: `label  µs/message  share`, the capacity last. */
export function accountLines(account: CpuAccount): string[] {
  const width = Math.max(...account.parts.map((part) => part.label.length));
  const lines = account.parts.map((part) => `${part.label.padEnd(width)}  ${part.usPerMessage.toFixed(1).padStart(7)} us  ${(part.share * 100).toFixed(1).padStart(5)} %`);
  const idleByCpu = Object.entries(account.idleUsPerMessageByCpu)
    .map(([cpu, us]) => `CPU ${cpu} ${us.toFixed(1)} us`)
    .join(', ');
  lines.push(`${'capacity'.padEnd(width)}  ${account.capacityUsPerMessage.toFixed(1).padStart(7)} us  100.0 %  (idle by CPU: ${idleByCpu})`);
  return lines;
}

/** Per part, the median over runs of µs per message and of share (runs list the same parts in the same order). */
export function medianAccount(accounts: readonly (CpuAccount | null)[]): CpuAccount | null {
  const present = accounts.filter((account): account is CpuAccount => account !== null);
  const [first] = present;
  if (first === undefined) return null;
  return {
    capacityUsPerMessage: median(present.map((account) => account.capacityUsPerMessage)),
    parts: first.parts.map((part, index) => ({
      label: part.label,
      usPerMessage: median(present.map((account) => account.parts[index]?.usPerMessage ?? 0)),
      share: median(present.map((account) => account.parts[index]?.share ?? 0)),
    })),
    idleUsPerMessageByCpu: Object.fromEntries(Object.keys(first.idleUsPerMessageByCpu).map((cpu) => [cpu, median(present.map((account) => account.idleUsPerMessageByCpu[cpu] ?? 0))])),
  };
}
