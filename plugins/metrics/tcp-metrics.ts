/**
 * Istio's TCP series (docs/observability.md#metrics): connections opened and closed, bytes received from
 * and sent to the client. `opened` is counted when the connection is routed; the bytes every reporting
 * interval while it is open and the rest, with the close, when it closes, under the labels it has then
 * (a flag such as UF or DT set in between names its close).
 */
import { BoundCounter } from './bound-series.js';
import type { CounterSeries } from './bound-series.js';
import type { ConnectionRecord } from '../../gateway/pipeline/types.js';
import { TCP_LABEL_NAMES, tcpLabelValues } from './istio-labels.js';
import type { CompiledIstioLabels } from './istio-labels.js';
import { DEFAULT_MAX_SERIES, OVERFLOW_LABEL_VALUE, SeriesGuard, boundLabelValue, meshRegistry } from '../../gateway/metrics/registry.js';

const opened = new BoundCounter('istio_tcp_connections_opened_total', 'TCP connections opened through this proxy.', meshRegistry);
const closed = new BoundCounter('istio_tcp_connections_closed_total', 'TCP connections closed through this proxy.', meshRegistry);
const received = new BoundCounter('istio_tcp_received_bytes_total', 'Bytes received from the client on proxied TCP connections.', meshRegistry);
const sent = new BoundCounter('istio_tcp_sent_bytes_total', 'Bytes sent to the client on proxied TCP connections.', meshRegistry);

interface TcpSeries {
  readonly opened: CounterSeries;
  readonly closed: CounterSeries;
  readonly received: CounterSeries;
  readonly sent: CounterSeries;
}

const guard = new SeriesGuard('istio_tcp_connections_opened_total', TCP_LABEL_NAMES, DEFAULT_MAX_SERIES);
const bySet = new Map<string, TcpSeries>();

function seriesOf(rawValues: readonly string[]): TcpSeries {
  let values = rawValues.map(boundLabelValue);
  let key = values.join('\u0001');
  const known = bySet.get(key);
  if (known !== undefined) return known;
  if (!guard.admit(key)) {
    values = TCP_LABEL_NAMES.map(() => OVERFLOW_LABEL_VALUE);
    key = values.join('\u0001');
  }
  const labels: Record<string, string> = {};
  TCP_LABEL_NAMES.forEach((name, index) => {
    labels[name] = values[index] ?? '';
  });
  const series = { opened: opened.bind(key, labels), closed: closed.bind(key, labels), received: received.bind(key, labels), sent: sent.bind(key, labels) };
  bySet.set(key, series);
  return series;
}

export function recordConnectionOpened(compiled: CompiledIstioLabels, record: ConnectionRecord): void {
  seriesOf(tcpLabelValues(compiled, record)).opened.inc();
}

/** Bytes of each open connection already added to the byte series (by `recordConnectionProgress`). */
const reported = new WeakMap<ConnectionRecord, { received: number; sent: number }>();

function addBytes(series: TcpSeries, record: ConnectionRecord): void {
  const before = reported.get(record) ?? { received: 0, sent: 0 };
  series.received.add(record.receivedBytes - before.received);
  series.sent.add(record.sentBytes - before.sent);
  reported.set(record, { received: record.receivedBytes, sent: record.sentBytes });
}

export function recordConnectionProgress(compiled: CompiledIstioLabels, record: ConnectionRecord): void {
  addBytes(seriesOf(tcpLabelValues(compiled, record)), record);
}

export function recordConnectionClosed(compiled: CompiledIstioLabels, record: ConnectionRecord): void {
  const series = seriesOf(tcpLabelValues(compiled, record));
  series.closed.inc();
  addBytes(series, record);
}
