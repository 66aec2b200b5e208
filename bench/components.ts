/**
 * Per-proxy figures for targets with several proxies (a sidecar pair, ingress → sidecar): CPU per
 * request and peak RSS of each proxy under each mode, and its idle RSS (VmRSS once ready, before any
 * request). The driver snapshots CPU before a measured run and turns it into a sample after; cells
 * are medians over rounds, like the main tables.
 */
import { medianOrNull } from './median.js';
import { treeCpuMicros, treePeakRssBytes } from './proc-stats.js';
import type { ComponentProcess } from './targets.js';

export interface ComponentSample {
  readonly cpuUsPerRequest: number | null;
  readonly peakRssBytes: number | null;
  readonly idleRssBytes: number | null;
}

export interface ComponentSummary extends ComponentSample {
  readonly rounds: number;
}

/** componentSamples[target][mode][label] */
export type ComponentSamples = Map<string, Map<string, Map<string, ComponentSample[]>>>;
/** componentSummaries[target][mode][label] */
export type ComponentSummaries = ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, ComponentSummary>>>;

export type CpuSnapshot = ReadonlyMap<string, number | null>;

export function snapshotCpu(components: readonly ComponentProcess[]): CpuSnapshot {
  return new Map(components.map((component) => [component.label, treeCpuMicros(component.pid)]));
}

export function componentSamples(components: readonly ComponentProcess[], before: CpuSnapshot, requests: number): Map<string, ComponentSample> {
  const samples = new Map<string, ComponentSample>();
  for (const component of components) {
    const start = before.get(component.label) ?? null;
    const end = treeCpuMicros(component.pid);
    samples.set(component.label, {
      cpuUsPerRequest: start === null || end === null || requests === 0 ? null : (end - start) / requests,
      peakRssBytes: treePeakRssBytes(component.pid),
      idleRssBytes: component.idleRssBytes,
    });
  }
  return samples;
}

/** Sum over the components, or null when any is unknown: the pair's figure for the main tables. */
export function sumOrNull(values: readonly (number | null)[]): number | null {
  return values.some((value) => value === null) ? null : (values as number[]).reduce((sum, value) => sum + value, 0);
}

export function recordComponentSamples(store: ComponentSamples, target: string, mode: string, samples: ReadonlyMap<string, ComponentSample>): void {
  const byMode = store.get(target) ?? new Map<string, Map<string, ComponentSample[]>>();
  store.set(target, byMode);
  const byLabel = byMode.get(mode) ?? new Map<string, ComponentSample[]>();
  byMode.set(mode, byLabel);
  for (const [label, sample] of samples) byLabel.set(label, [...(byLabel.get(label) ?? []), sample]);
}

export function summarizeComponents(store: ComponentSamples): ComponentSummaries {
  const summaries = new Map<string, Map<string, Map<string, ComponentSummary>>>();
  for (const [target, byMode] of store) {
    const modes = new Map<string, Map<string, ComponentSummary>>();
    for (const [mode, byLabel] of byMode) {
      const labels = new Map<string, ComponentSummary>();
      for (const [label, samples] of byLabel) {
        labels.set(label, {
          rounds: samples.length,
          cpuUsPerRequest: medianOrNull(samples.map((sample) => sample.cpuUsPerRequest)),
          peakRssBytes: medianOrNull(samples.map((sample) => sample.peakRssBytes)),
          idleRssBytes: medianOrNull(samples.map((sample) => sample.idleRssBytes)),
        });
      }
      modes.set(mode, labels);
    }
    summaries.set(target, modes);
  }
  return summaries;
}

const fixed = (value: number | null, digits: number): string => (value === null ? '-' : value.toFixed(digits));
const mb = (bytes: number | null): string => (bytes === null ? '-' : (bytes / 1_048_576).toFixed(1));

/** One row per proxy of each multi-proxy target: CPU us/req in each mode, peak RSS under saturation, idle RSS. */
export function componentTable(summaries: ComponentSummaries, saturationMode: string, unloadedMode: string): string {
  const header = ['target', 'proxy', 'sat CPU us/req', '= vCPU per 1k req/s', 'c1 CPU us/req', 'peak RSS MB', 'idle RSS MB'];
  const rows: string[][] = [];
  for (const [target, byMode] of summaries) {
    const saturated = byMode.get(saturationMode);
    const unloaded = byMode.get(unloadedMode);
    for (const [label, cell] of saturated ?? unloaded ?? new Map<string, ComponentSummary>()) {
      const c1 = unloaded?.get(label);
      rows.push([
        target,
        label,
        fixed(saturated?.get(label)?.cpuUsPerRequest ?? null, 1),
        fixed(cell.cpuUsPerRequest === null ? null : cell.cpuUsPerRequest / 1_000, 3),
        fixed(c1?.cpuUsPerRequest ?? null, 1),
        mb(cell.peakRssBytes),
        mb(cell.idleRssBytes),
      ]);
    }
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column] as number)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}
