/**
 * Turns per-round samples into medians, the two tables (saturation, unloaded) and the headline ratios
 * against `direct` and `bare-fastify`. Each cell is the median over rounds, as in
 * bench/README.md#method; errors are totals over rounds, because one is already too many.
 */
import type { ComponentSample } from './components.js';
import type { LoadResult } from './load-generator.js';
import { median, medianOrNull } from './median.js';

export interface Mode {
  readonly name: string;
  readonly connections: number;
  readonly title: string;
}

export interface Sample extends LoadResult {
  readonly round: number;
  readonly proxyCpuUsPerRequest: number | null;
  readonly upstreamCpuUsPerRequest: number | null;
  readonly proxyPeakRssBytes: number | null;
  /** Per proxy, by label, when the target has several (components.ts). */
  readonly components?: Readonly<Record<string, ComponentSample>>;
}

export interface CellSummary {
  readonly rounds: number;
  readonly requestsPerSecond: number;
  readonly requestsPerSecondMin: number;
  readonly requestsPerSecondMax: number;
  /** round number → req/s of that round, for ratios paired by round (bars.ts). */
  readonly requestsPerSecondByRound: ReadonlyMap<number, number>;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  /** round number → p99.9 of that round, for the tail bars' ratios paired by round. */
  readonly p999UsByRound: ReadonlyMap<number, number>;
  readonly proxyCpuUsPerRequest: number | null;
  /** round number → proxy CPU us/req of that round (rounds that measured it), for ratios paired by round. */
  readonly proxyCpuUsPerRequestByRound: ReadonlyMap<number, number>;
  readonly upstreamCpuUsPerRequest: number | null;
  readonly proxyPeakRssBytes: number | null;
  readonly non2xxTotal: number;
  readonly socketErrorsTotal: number;
}

export const DIRECT = 'direct';
export const BARE_PROXY = 'bare-fastify';

export function summarize(samples: readonly Sample[]): CellSummary {
  const rates = samples.map((sample) => sample.requestsPerSecond);
  return {
    rounds: samples.length,
    requestsPerSecond: median(rates),
    requestsPerSecondMin: Math.min(...rates),
    requestsPerSecondMax: Math.max(...rates),
    requestsPerSecondByRound: new Map(samples.map((sample) => [sample.round, sample.requestsPerSecond])),
    p50Us: median(samples.map((sample) => sample.p50Us)),
    p90Us: median(samples.map((sample) => sample.p90Us)),
    p99Us: median(samples.map((sample) => sample.p99Us)),
    p999Us: median(samples.map((sample) => sample.p999Us)),
    p999UsByRound: new Map(samples.map((sample) => [sample.round, sample.p999Us])),
    proxyCpuUsPerRequest: medianOrNull(samples.map((sample) => sample.proxyCpuUsPerRequest)),
    proxyCpuUsPerRequestByRound: new Map(samples.flatMap((sample) => (sample.proxyCpuUsPerRequest === null ? [] : [[sample.round, sample.proxyCpuUsPerRequest] as const]))),
    upstreamCpuUsPerRequest: medianOrNull(samples.map((sample) => sample.upstreamCpuUsPerRequest)),
    proxyPeakRssBytes: medianOrNull(samples.map((sample) => sample.proxyPeakRssBytes)),
    non2xxTotal: samples.reduce((sum, sample) => sum + sample.non2xx, 0),
    socketErrorsTotal: samples.reduce((sum, sample) => sum + sample.socketErrors, 0),
  };
}

/** summaries[target][mode] */
export type Summaries = ReadonlyMap<string, ReadonlyMap<string, CellSummary>>;

const dash = '-';
const fixed = (value: number | null, digits: number): string => (value === null ? dash : value.toFixed(digits));
const ms = (us: number): string => (us / 1_000).toFixed(2);
const mb = (bytes: number | null): string => (bytes === null ? dash : (bytes / 1_048_576).toFixed(1));
const errors = (cell: CellSummary): string => `${cell.non2xxTotal} / ${cell.socketErrorsTotal}`;

function ratio(cell: CellSummary, reference: CellSummary | undefined): string {
  return reference === undefined ? dash : (cell.requestsPerSecond / reference.requestsPerSecond).toFixed(2);
}

function added(value: number, reference: number | undefined): string {
  if (reference === undefined) return dash;
  const delta = Math.round(value - reference);
  return delta >= 0 ? `+${delta}` : String(delta);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column] as number)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function saturationTable(summaries: Summaries, mode: string): string {
  const reference = (target: string): CellSummary | undefined => summaries.get(target)?.get(mode);
  const rows: string[][] = [];
  for (const [target, byMode] of summaries) {
    const cell = byMode.get(mode);
    if (cell === undefined) continue;
    rows.push([
      target,
      `${cell.requestsPerSecond.toFixed(0)} (${cell.requestsPerSecondMin.toFixed(0)}-${cell.requestsPerSecondMax.toFixed(0)})`,
      ratio(cell, reference(DIRECT)),
      ratio(cell, reference(BARE_PROXY)),
      ms(cell.p50Us),
      ms(cell.p90Us),
      ms(cell.p99Us),
      ms(cell.p999Us),
      fixed(cell.proxyCpuUsPerRequest, 1),
      fixed(cell.upstreamCpuUsPerRequest, 1),
      mb(cell.proxyPeakRssBytes),
      errors(cell),
    ]);
  }
  const header = ['target', 'req/s (min-max)', 'x direct', `x ${BARE_PROXY}`, 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'proxy CPU us/req', 'upstream CPU us/req', 'proxy peak RSS MB', 'non-2xx / socket err'];
  return table(header, rows);
}

export function unloadedTable(summaries: Summaries, mode: string): string {
  const reference = summaries.get(DIRECT)?.get(mode);
  const rows: string[][] = [];
  for (const [target, byMode] of summaries) {
    const cell = byMode.get(mode);
    if (cell === undefined) continue;
    const isDirect = target === DIRECT;
    rows.push([
      target,
      cell.requestsPerSecond.toFixed(0),
      cell.p50Us.toFixed(0),
      cell.p90Us.toFixed(0),
      cell.p99Us.toFixed(0),
      cell.p999Us.toFixed(0),
      isDirect ? dash : added(cell.p50Us, reference?.p50Us),
      isDirect ? dash : added(cell.p90Us, reference?.p90Us),
      fixed(cell.proxyCpuUsPerRequest, 1),
      mb(cell.proxyPeakRssBytes),
      errors(cell),
    ]);
  }
  const header = ['target', 'req/s', 'p50 us', 'p90 us', 'p99 us', 'p99.9 us', 'added p50 us', 'added p90 us', 'proxy CPU us/req', 'proxy peak RSS MB', 'non-2xx / socket err'];
  return table(header, rows);
}

/** One line per target under test: throughput vs direct and the bare proxy, added unloaded p50. */
export function headlines(summaries: Summaries, saturationMode: string, unloadedMode: string): string[] {
  const direct = summaries.get(DIRECT);
  const bare = summaries.get(BARE_PROXY);
  const lines: string[] = [];
  for (const [target, byMode] of summaries) {
    if (target === DIRECT) continue;
    const saturated = byMode.get(saturationMode);
    const unloaded = byMode.get(unloadedMode);
    const parts: string[] = [];
    if (saturated !== undefined) {
      parts.push(`throughput ${ratio(saturated, direct?.get(saturationMode))}x direct`);
      if (target !== BARE_PROXY && bare !== undefined) parts.push(`${ratio(saturated, bare?.get(saturationMode))}x ${BARE_PROXY}`);
    }
    if (unloaded !== undefined) parts.push(`added p50 unloaded ${added(unloaded.p50Us, direct?.get(unloadedMode)?.p50Us)} us vs direct`);
    lines.push(`${target}: ${parts.join(', ')}`);
  }
  return lines;
}
