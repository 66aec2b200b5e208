/**
 * Istio's standard HTTP series (docs/observability.md#metrics), recorded once per request at stream end.
 * The four series share one label set, so one cache maps the joined label values to the four bound
 * series (bound-series.ts): after the first request of a kind, recording is one map lookup and four
 * plain increments, with no per-request label hashing. The cache is also the cardinality guard (SeriesGuard semantics: beyond the cap, the `overflow` series).
 */
import { BoundCounter, BoundHistogram } from './bound-series.js';
import type { CounterSeries, HistogramSeries } from './bound-series.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ISTIO_LABEL_NAMES, counterpartOf, isDestinationReporter, isGrpc, istioLabelKey, istioLabelValues } from './istio-labels.js';
import type { CompiledIstioLabels, IstioLabelName } from './istio-labels.js';
import { DEFAULT_MAX_SERIES, OVERFLOW_LABEL_VALUE, SeriesGuard, boundLabelValue, meshRegistry } from '../../gateway/metrics/registry.js';

/** Envoy's default histogram buckets, in milliseconds (docs/observability.md#metrics). */
export const ENVOY_DEFAULT_BUCKETS_MS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
] as const;

/** Decade buckets 1 B … 1 GB for request/response sizes. */
const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

const requestsTotal = new BoundCounter('istio_requests_total', 'Requests handled by this proxy, counted at stream end.', meshRegistry);

const requestDuration = new BoundHistogram(
  'istio_request_duration_milliseconds',
  'Request duration from the first byte received to the last byte sent, in milliseconds.',
  ENVOY_DEFAULT_BUCKETS_MS,
  meshRegistry,
);

const requestBytes = new BoundHistogram('istio_request_bytes', 'Request size on the downstream connection (headers + body), in bytes.', SIZE_BUCKETS, meshRegistry);

const responseBytes = new BoundHistogram('istio_response_bytes', 'Response size on the downstream connection (headers + body), in bytes.', SIZE_BUCKETS, meshRegistry);

export interface IstioSeries {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly requestSize: HistogramSeries;
  readonly responseSize: HistogramSeries;
}

const SERIES_CACHE_METRIC = 'istio_requests_total';

function bind(key: string, values: readonly string[]): IstioSeries {
  const labels = {} as Record<IstioLabelName, string>;
  ISTIO_LABEL_NAMES.forEach((name, index) => {
    labels[name] = values[index] ?? '';
  });
  return {
    requests: requestsTotal.bind(key, labels),
    duration: requestDuration.bind(key, labels),
    requestSize: requestBytes.bind(key, labels),
    responseSize: responseBytes.bind(key, labels),
  };
}

/** Request kinds remembered per compiled label state; past it the memo starts over (clients can vary the Host). */
const MEMO_LIMIT = 4096;

/** Plain kinds (below) checked before the kind key is built: a proxy's traffic is mostly a handful of them. */
const RECENT_KINDS = 8;

/**
 * A request kind without response flags or gRPC, by the inputs istioLabelKey joins for it: a request
 * matching these fields has that key, so it is compared field by field instead of building the key string.
 */
class PlainKind {
  constructor(
    readonly destinationReporter: boolean,
    readonly status: number,
    readonly cluster: string,
    readonly counterpart: string,
    readonly host: string,
    readonly series: IstioSeries,
  ) {}
}

class KindMemo {
  readonly byKey = new Map<string, IstioSeries>();
  readonly recent: PlainKind[] = [];
  private nextSlot = 0;

  remember(kind: PlainKind): void {
    this.recent[this.nextSlot] = kind;
    this.nextSlot = (this.nextSlot + 1) % RECENT_KINDS;
  }
}

export class IstioSeriesCache {
  private readonly series = new Map<string, IstioSeries>();
  private readonly guard: SeriesGuard<IstioLabelName>;
  private overflow: IstioSeries | null = null;
  private readonly memos = new WeakMap<CompiledIstioLabels, KindMemo>();
  /** The last state's memo: every request of a snapshot asks for the same one. */
  private lastState: CompiledIstioLabels | null = null;
  private lastMemo = new KindMemo();

  constructor(maxSeries = DEFAULT_MAX_SERIES) {
    this.guard = new SeriesGuard(SERIES_CACHE_METRIC, ISTIO_LABEL_NAMES, maxSeries);
  }

  /**
   * The series of the request's kind under `state`. A recent plain kind is found by comparing a few
   * fields; otherwise the kind's key (istioLabelKey) is built, and the 23 label values are computed
   * only the first time a kind is seen.
   */
  seriesFor(state: CompiledIstioLabels, request: FastifyRequest, reply: FastifyReply): IstioSeries {
    const memo = this.memoOf(state);
    const mesh = request.mesh;
    const plain = mesh.responseFlags.length === 0 && !isGrpc(request);
    const destinationReporter = isDestinationReporter(state, request);
    const counterpart = counterpartOf(request, destinationReporter);
    const status = reply.statusCode;
    if (plain) {
      for (const kind of memo.recent) {
        if (
          kind.status === status &&
          kind.counterpart === counterpart &&
          kind.cluster === mesh.upstreamCluster &&
          kind.host === mesh.attrs.host &&
          kind.destinationReporter === destinationReporter
        ) {
          return kind.series;
        }
      }
    }
    const kindKey = istioLabelKey(state, request, reply);
    let series = memo.byKey.get(kindKey);
    if (series === undefined) {
      series = this.seriesOf(istioLabelValues(state, request, reply));
      // Overflowing kinds are not remembered: each of their requests is counted as dropped.
      if (series === this.overflow) return series;
      if (memo.byKey.size >= MEMO_LIMIT) memo.byKey.clear();
      memo.byKey.set(kindKey, series);
    }
    if (plain) memo.remember(new PlainKind(destinationReporter, status, mesh.upstreamCluster, counterpart, mesh.attrs.host, series));
    return series;
  }

  private memoOf(state: CompiledIstioLabels): KindMemo {
    if (state === this.lastState) return this.lastMemo;
    let memo = this.memos.get(state);
    if (memo === undefined) {
      memo = new KindMemo();
      this.memos.set(state, memo);
    }
    this.lastState = state;
    this.lastMemo = memo;
    return memo;
  }

  private seriesOf(rawValues: readonly string[]): IstioSeries {
    const values = rawValues.map(boundLabelValue);
    const key = values.join('\u0001');
    const known = this.series.get(key);
    if (known !== undefined) return known;
    if (this.guard.admit(key)) {
      const series = bind(key, values);
      this.series.set(key, series);
      return series;
    }
    const overflowValues = ISTIO_LABEL_NAMES.map(() => OVERFLOW_LABEL_VALUE);
    this.overflow ??= bind(overflowValues.join('\u0001'), overflowValues);
    return this.overflow;
  }
}

/** One cache per process: the series are process-wide, whichever snapshot recorded them. */
export const istioSeries = new IstioSeriesCache();
