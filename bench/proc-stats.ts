/**
 * CPU time and peak memory of a process tree, read from /proc (Linux). CPU is utime + stime of every
 * live process in the tree (bench/README.md#method measures "the proxy process tree"), peak RSS is
 * the sum of each process's VmHWM. Off Linux the readers return null and the table shows "-".
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const FALLBACK_CLOCK_TICKS = 100;
/** utime and stime are fields 14 and 15 of /proc/<pid>/stat; after the ")" closing comm they are at 11 and 12. */
const UTIME_AFTER_COMM = 11;
const STIME_AFTER_COMM = 12;

function readClockTicks(): number {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(result.stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : FALLBACK_CLOCK_TICKS;
}

/** USER_HZ: the unit of /proc's CPU times. */
export const clockTicksPerSecond = readClockTicks();

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The pid and all its live descendants (children are listed per thread in /proc/<pid>/task/<tid>/children). */
export function processTree(rootPid: number): number[] {
  const found: number[] = [];
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    if (readText(`/proc/${pid}/stat`) === null) continue;
    found.push(pid);
    let threads: string[];
    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of threads) {
      const children = readText(`/proc/${pid}/task/${tid}/children`) ?? '';
      for (const child of children.split(' ')) if (child !== '') pending.push(Number(child));
    }
  }
  return found;
}

function cpuTicks(pid: number): number | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[UTIME_AFTER_COMM]) + Number(fields[STIME_AFTER_COMM]);
}

/** CPU time (user + system) consumed so far by the process alone, in microseconds; null when it is gone. */
export function processCpuMicros(pid: number): number | null {
  const ticks = cpuTicks(pid);
  return ticks === null ? null : (ticks * 1_000_000) / clockTicksPerSecond;
}

/** CPU time (user + system) consumed so far by the tree, in microseconds; null when /proc is unavailable. */
export function treeCpuMicros(rootPid: number): number | null {
  const pids = processTree(rootPid);
  if (pids.length === 0) return null;
  let ticks = 0;
  for (const pid of pids) ticks += cpuTicks(pid) ?? 0;
  return (ticks * 1_000_000) / clockTicksPerSecond;
}

function statusKilobytes(pid: number, field: string): number | null {
  const status = readText(`/proc/${pid}/status`);
  if (status === null) return null;
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  return match === null ? null : Number(match[1]);
}

function treeStatusBytes(rootPid: number, field: string): number | null {
  const pids = processTree(rootPid);
  let total: number | null = null;
  for (const pid of pids) {
    const kilobytes = statusKilobytes(pid, field);
    if (kilobytes !== null) total = (total ?? 0) + kilobytes * 1024;
  }
  return total;
}

/** Peak resident set (VmHWM) of the tree, in bytes; null when /proc is unavailable. */
export function treePeakRssBytes(rootPid: number): number | null {
  return treeStatusBytes(rootPid, 'VmHWM');
}

/** Current resident set (VmRSS) of the tree, in bytes; null when /proc is unavailable. */
export function treeRssBytes(rootPid: number): number | null {
  return treeStatusBytes(rootPid, 'VmRSS');
}
