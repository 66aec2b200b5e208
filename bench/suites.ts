/**
 * Which targets a run measures. `BENCH_SUITE` picks a group (default `all`); `BENCH_TARGETS` picks
 * names across every group and wins over the suite. `mtls-handshakes`, `tcp-sidecar-pair`, `grpc-unary`, `proxy-memory` and
 * the `dapr` suite's names are not wrk targets: they are measurements of their own (handshake-bench.ts,
 * tcp-bench.ts, grpc-bench.ts with its own gRPC load generator, memory-bench.ts, dapr-bench.ts), run once after the rounds
 * when selected.
 */
import { DAPR_MEASUREMENTS } from './dapr-bench.js';
import { GRPC_TARGET } from './grpc-bench.js';
import { HANDSHAKE_TARGET } from './handshake-bench.js';
import { MEMORY_TARGET } from './memory-bench.js';
import { TCP_TARGET } from './tcp-bench.js';
import { INGRESS_TO_SIDECAR, MESH_PAIR, MESH_TARGETS, NODE_FLOOR_PAIR } from './mesh-targets.js';
import { FULL_CHAIN_TARGET, OBSERVABILITY_TARGET, POLICIES_TARGET, POLICY_TARGETS, QUIET_TARGET, RATELIMIT_LOCAL_TARGET, RATELIMIT_REDIS_TARGET, USER_PLUGIN_TARGET } from './policy-targets.js';
import { BASELINE_TARGET, NODE_FLOOR_HTTP_TARGET, NODE_FLOOR_TARGET, TARGETS } from './targets.js';
import { LARGE_TABLE_TARGET, SMALL_TABLE_TARGET } from './scale.js';
import type { BenchTarget } from './targets.js';

export const SUITES: Readonly<Record<string, readonly string[]>> = {
  ingress: ['direct', NODE_FLOOR_HTTP_TARGET, 'bare-fastify', 'meshgate-http', 'meshgate-https'],
  workers: ['direct', 'meshgate-workers-1', 'meshgate-workers-2'],
  mesh: ['direct', NODE_FLOOR_PAIR, MESH_PAIR, INGRESS_TO_SIDECAR, HANDSHAKE_TARGET, TCP_TARGET],
  scale: ['direct', SMALL_TABLE_TARGET, LARGE_TABLE_TARGET],
  grpc: [GRPC_TARGET],
  chain: ['direct', 'bare-fastify', NODE_FLOOR_TARGET, FULL_CHAIN_TARGET],
  policies: ['direct', 'meshgate-http', POLICIES_TARGET, RATELIMIT_LOCAL_TARGET, RATELIMIT_REDIS_TARGET, USER_PLUGIN_TARGET, QUIET_TARGET, OBSERVABILITY_TARGET],
  dapr: DAPR_MEASUREMENTS,
  memory: [MEMORY_TARGET],
};
export const DEFAULT_SUITE = 'all';

/**
 * Run order within a round. A bar compares two targets of the same round, and a shared machine's speed
 * drifts over a round's minutes, so each compared target runs right after its reference: the full
 * chain between the Node.js floor and the bare proxy, the bare proxy before meshgate-http, which the
 * policy and rate-limit targets follow; observability after quiet; the sidecar pair after its Node.js floor.
 */
const RUN_ORDER: readonly string[] = [
  'direct',
  NODE_FLOOR_TARGET,
  FULL_CHAIN_TARGET,
  NODE_FLOOR_HTTP_TARGET,
  'bare-fastify',
  BASELINE_TARGET,
  'meshgate-http',
  POLICIES_TARGET,
  RATELIMIT_LOCAL_TARGET,
  RATELIMIT_REDIS_TARGET,
  USER_PLUGIN_TARGET,
  QUIET_TARGET,
  OBSERVABILITY_TARGET,
  'meshgate-https',
  SMALL_TABLE_TARGET,
  LARGE_TABLE_TARGET,
  'meshgate-workers-1',
  'meshgate-workers-2',
  NODE_FLOOR_PAIR,
  MESH_PAIR,
  INGRESS_TO_SIDECAR,
];

function inRunOrder(targets: readonly BenchTarget[]): BenchTarget[] {
  const missing = targets.filter((target) => !RUN_ORDER.includes(target.name)).map((target) => target.name);
  if (missing.length > 0) throw new Error(`bench targets without a place in RUN_ORDER: ${missing.join(', ')}`);
  return [...targets].sort((a, b) => RUN_ORDER.indexOf(a.name) - RUN_ORDER.indexOf(b.name));
}

export const ALL_TARGETS: readonly BenchTarget[] = inRunOrder([...TARGETS, ...MESH_TARGETS, ...POLICY_TARGETS]);

export interface Selection {
  readonly suite: string;
  readonly targets: readonly BenchTarget[];
  readonly handshakes: boolean;
  readonly tcp: boolean;
  /** The `dapr` suite's measurements selected, in DAPR_MEASUREMENTS order. */
  readonly dapr: readonly string[];
  readonly grpc: boolean;
  readonly memory: boolean;
}

export function selectTargets(suiteName: string | undefined, filter: string | undefined): Selection {
  const suite = suiteName === undefined || suiteName === '' ? DEFAULT_SUITE : suiteName;
  let names: readonly string[];
  if (filter !== undefined && filter !== '') {
    names = filter.split(',').map((name) => name.trim());
  } else if (suite === 'all') {
    names = [...ALL_TARGETS.map((target) => target.name), HANDSHAKE_TARGET, TCP_TARGET, GRPC_TARGET, MEMORY_TARGET, ...DAPR_MEASUREMENTS];
  } else {
    const members = SUITES[suite];
    if (members === undefined) throw new Error(`unknown BENCH_SUITE "${suite}" (known: all, ${Object.keys(SUITES).join(', ')})`);
    names = members;
  }
  const known = [...ALL_TARGETS.map((target) => target.name), HANDSHAKE_TARGET, TCP_TARGET, GRPC_TARGET, MEMORY_TARGET, ...DAPR_MEASUREMENTS];
  const unknown = names.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`unknown BENCH_TARGETS ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return {
    suite: filter !== undefined && filter !== '' ? 'custom' : suite,
    targets: ALL_TARGETS.filter((target) => names.includes(target.name)),
    handshakes: names.includes(HANDSHAKE_TARGET),
    tcp: names.includes(TCP_TARGET),
    dapr: DAPR_MEASUREMENTS.filter((name) => names.includes(name)),
    grpc: names.includes(GRPC_TARGET),
    memory: names.includes(MEMORY_TARGET),
  };
}
