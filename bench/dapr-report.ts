/**
 * The `dapr` suite's lines of the report (run.ts prints them after the rounds): each pub/sub
 * measurement with where the CPUs went per message, the side-by-side pairs, the state GET.
 */
import { availableParallelism } from 'node:os';
import { accountLines } from './cpu-accounting.js';
import type { DaprResults, DaprSettings, Spread } from './dapr-bench.js';
import { IN_FLIGHT } from './dapr-throughput.js';

const cpus = (): number => availableParallelism();
const range = (value: Spread, digits: number): string => `${value.median.toFixed(digits)} (${value.min.toFixed(digits)}–${value.max.toFixed(digits)})`;

export function daprLines(results: DaprResults, settings: DaprSettings): string[] {
  const lines: string[] = [];
  for (const result of results.pubsub) {
    const cpu = (value: Spread | null): string => (value === null ? '-' : range(value, 0));
    lines.push(
      `${result.name} (${result.publisher} publisher): ${range(result.messagesPerSecond, 0)} msg/s (median, min–max of ${result.runs.length} × ${settings.messages}, ${IN_FLIGHT} in flight); ` +
        `lost ${result.lost}, duplicated ${result.duplicated}; publish → delivery p50 ${result.latencyP50Ms?.toFixed(2) ?? '-'} ms, p99 ${result.latencyP99Ms?.toFixed(2) ?? '-'} ms (${settings.latencyMessages} one at a time); ` +
        `CPU per message: sidecar A ${cpu(result.publisherCpuUsPerMessage)} us, sidecar B ${cpu(result.subscriberCpuUsPerMessage)} us`,
    );
    if (result.cpu !== null) {
      lines.push(`  where the ${cpus()} CPUs went, per message (median of the runs' windows, go → last delivery):`);
      lines.push(...accountLines(result.cpu).map((line) => `    ${line}`));
    }
  }
  for (const pair of results.sideBySide) {
    const cpu = (value: Spread | null): string => (value === null ? '-' : range(value, 0));
    const ratio = (value: Spread | null): string => (value === null ? '-' : range(value, 2));
    lines.push(
      `${pair.name} side by side with BENCH_BASELINE_CLI (${pair.repetitions} × ${settings.messages}, both pairs loaded at once): CPU per message ` +
        `sidecar A ×${ratio(pair.publisherCpuRatio)}, sidecar B ×${ratio(pair.subscriberCpuRatio)} (this build over the baseline, per repetition); ` +
        `this build A ${cpu(pair.thisBuild.publisherCpuUsPerMessage)} / B ${cpu(pair.thisBuild.subscriberCpuUsPerMessage)} us, ${range(pair.thisBuild.messagesPerSecond, 0)} msg/s; ` +
        `baseline A ${cpu(pair.baseline.publisherCpuUsPerMessage)} / B ${cpu(pair.baseline.subscriberCpuUsPerMessage)} us, ${range(pair.baseline.messagesPerSecond, 0)} msg/s; ` +
        `lost ${pair.lost}, duplicated ${pair.duplicated}`,
    );
  }
  if (results.state !== null) {
    const { state } = results;
    lines.push(
      `${state.name}: sidecar p50 ${range(state.sidecarP50Us, 0)} us vs direct ioredis GET p50 ${range(state.directP50Us, 0)} us → added ${range(state.addedP50Us, 0)} us ` +
        `(median, min–max of ${state.runs.length} × ${settings.seconds} s, alternating request by request); sidecar CPU per GET ${state.sidecarCpuUsPerGet?.toFixed(1) ?? '-'} us`,
    );
  }
  return lines;
}
