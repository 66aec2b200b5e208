/**
 * How many worker threads serve the proxy listeners (Envoy's --concurrency). Workers share each
 * listening port through SO_REUSEPORT (every worker binds its own socket and the kernel spreads new
 * connections across them), which Node.js offers from 22.12 / 23.1 on Linux and FreeBSD; elsewhere
 * the proxy runs one worker whatever was asked. bench/README.md ("Concurrency") has the measurements
 * behind threads + SO_REUSEPORT rather than node:cluster processes.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { ProxyMode } from '../pipeline/types.js';

/** cgroup v2's CPU bandwidth limit: `max 100000` (none) or `<quota> <period>` in microseconds. */
const CGROUP_CPU_MAX = '/sys/fs/cgroup/cpu.max';

/** Whole cores a `cpu.max` quota grants (a fraction rounds up, as a 1.5-core pod can keep two busy half the time); null = no quota. */
export function coresFromCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max' || period === undefined) return null;
  const cores = Number(quota) / Number(period);
  return Number.isFinite(cores) && cores > 0 ? Math.max(1, Math.ceil(cores)) : null;
}

function readCpuMax(): string | null {
  try {
    return readFileSync(CGROUP_CPU_MAX, 'utf8');
  } catch {
    return null;
  }
}

/** The CPUs this process may run on (affinity) capped by its cgroup's CPU quota. */
export function availableCores(cpuMax: string | null = readCpuMax()): number {
  const quota = cpuMax === null ? null : coresFromCpuMax(cpuMax);
  return Math.max(1, Math.min(availableParallelism(), quota ?? Number.POSITIVE_INFINITY));
}

/** Whether `listen({ reusePort: true })` exists here: Node.js ≥ 22.12 (or ≥ 23.1) on Linux or FreeBSD. */
export function canShareListeners(version: string = process.versions.node, platform: NodeJS.Platform = process.platform): boolean {
  if (platform !== 'linux' && platform !== 'freebsd') return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export interface WorkerCount {
  readonly workers: number;
  /** Why fewer workers run than were asked for, to be logged; null when none were lost. */
  readonly limitedBy: string | null;
}

/** `--concurrency` wins over MeshConfig `concurrency`; unset, an ingress uses every available core and a sidecar one (as Istio). */
export function workerCount(flag: number | undefined, meshConcurrency: number | undefined, mode: ProxyMode, sharing = canShareListeners()): WorkerCount {
  const asked = flag ?? meshConcurrency;
  const wanted = asked ?? (mode === 'ingress' ? availableCores() : 1);
  if (wanted > 1 && !sharing) {
    // An unset default quietly falls back; an explicit number that cannot be honoured is said out loud.
    const limitedBy = asked === undefined ? null : `Node.js ${process.versions.node} on ${process.platform} cannot share a listening port between threads (SO_REUSEPORT needs Node.js >= 22.12 on Linux or FreeBSD)`;
    return { workers: 1, limitedBy };
  }
  return { workers: wanted, limitedBy: null };
}
