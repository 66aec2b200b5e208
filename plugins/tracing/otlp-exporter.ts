/**
 * OTLP/HTTP JSON export of finished spans, sent through an undici Pool: the client the proxy already
 * uses for its upstream requests.
 *
 * OpenTelemetry's OTLPTraceExporter posts through node:http. Its client request, socket and response
 * parser then pass through the core http and stream functions that a busy proxy has optimised for
 * its own server-side objects: in a proxy under load (tracing at 1 %), the first export deoptimised
 * about 60 of them ("wrong map"), and they were recompiled over the next seconds while throughput
 * sagged. Through undici, the same export deoptimises about 10 (undici's parser callbacks meeting a
 * second handler class).
 */
import { createRequire } from 'node:module';
import type * as OtlpTransformer from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Pool } from '../../gateway/upstream/undici-core.js';
import type { Dispatcher } from 'undici';

/**
 * OTEL_EXPORTER_OTLP_TRACES_HEADERS, else OTEL_EXPORTER_OTLP_HEADERS: comma-separated `key=value`
 * pairs, each part percent-decoded (the OpenTelemetry specification's format). Malformed pairs are skipped.
 */
export function otlpHeadersFromEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const list = env['OTEL_EXPORTER_OTLP_TRACES_HEADERS'] ?? env['OTEL_EXPORTER_OTLP_HEADERS'] ?? '';
  const headers: Record<string, string> = {};
  for (const pair of list.split(',')) {
    const equals = pair.indexOf('=');
    if (equals <= 0) continue;
    try {
      const name = decodeURIComponent(pair.slice(0, equals).trim()).toLowerCase();
      if (name !== '' && name !== 'content-type') headers[name] = decodeURIComponent(pair.slice(equals + 1).trim());
    } catch {
      // An invalid percent-encoding: skip the pair, as the SDK does.
    }
  }
  return headers;
}

/** Resolves true on a 2xx answer; false on any other status, a connection error or the timeout. */
class ExportExchange implements Dispatcher.DispatchHandler {
  readonly done: Promise<boolean>;
  private settle!: (accepted: boolean) => void;
  private statusCode = 0;
  private readonly timer: NodeJS.Timeout;
  private controller: Dispatcher.DispatchController | null = null;
  private timedOut = false;

  constructor(timeoutMs: number) {
    this.done = new Promise<boolean>((resolve) => {
      this.settle = resolve;
    });
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller?.abort(new Error('OTLP export timed out'));
      this.finish(false);
    }, timeoutMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.timedOut) controller.abort(new Error('OTLP export timed out'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode >= 200) this.statusCode = statusCode;
  }

  onResponseData(): void {
    // The body (a partial-success report at most) is not needed: accepted or not is the status.
  }

  onResponseEnd(): void {
    this.finish(this.statusCode >= 200 && this.statusCode < 300);
  }

  onResponseError(): void {
    this.finish(false);
  }

  private finish(accepted: boolean): void {
    clearTimeout(this.timer);
    this.settle(accepted);
  }
}

type Serializer = typeof OtlpTransformer.JsonTraceSerializer;

export class OtlpJsonExporter {
  private readonly serializer: Serializer;
  private readonly pool: Pool;
  private readonly path: string;
  private readonly headers: Record<string, string>;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    headers: Readonly<Record<string, string>>,
  ) {
    // Loaded on first use, by proxies that export traces only (otlp-transformer brings protobufjs).
    this.serializer = (createRequire(import.meta.url)('@opentelemetry/otlp-transformer') as typeof OtlpTransformer).JsonTraceSerializer;
    const target = new URL(url);
    this.pool = new Pool(target.origin, { connections: 2 });
    this.path = `${target.pathname}${target.search}`;
    this.headers = { ...headers, 'content-type': 'application/json' };
  }

  /** Posts one batch; resolves whether the collector accepted it (never rejects). */
  export(spans: ReadableSpan[]): Promise<boolean> {
    const body = this.serializer.serializeRequest(spans);
    if (body === undefined) return Promise.resolve(false);
    const exchange = new ExportExchange(this.timeoutMs);
    this.pool.dispatch({ method: 'POST', path: this.path, headers: this.headers, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) }, exchange);
    return exchange.done;
  }

  async shutdown(): Promise<void> {
    await this.pool.close();
  }
}
