/**
 * OTLP/HTTP JSON export of batches of finished spans (span-batch.ts), sent through an undici Pool with
 * the upstream path's handler class (TryExchange). It runs on the span export thread (exporter-thread.ts).
 */
import { Pool } from '../../gateway/upstream/undici-core.js';
import { TryExchange } from '../../gateway/upstream/try-exchange.js';
import { OtlpTracesRequest } from './otlp-json.js';

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

const EXPORT_TIMEOUT = new Error('OTLP export timed out');

export class OtlpJsonExporter {
  private readonly request: OtlpTracesRequest;
  private readonly pool: Pool;
  private readonly path: string;
  private readonly headers: Record<string, string>;

  constructor(
    url: string,
    serviceName: string,
    private readonly timeoutMs: number,
    headers: Readonly<Record<string, string>>,
  ) {
    this.request = new OtlpTracesRequest(serviceName);
    const target = new URL(url);
    // The runtime sends one batch at a time.
    this.pool = new Pool(target.origin, { connections: 1 });
    this.path = `${target.pathname}${target.search}`;
    this.headers = { ...headers, 'content-type': 'application/json' };
  }

  /** Posts one batch's span bytes; resolves whether the collector accepted it (a 2xx before the timeout; never rejects). */
  export(spansJson: Uint8Array): Promise<boolean> {
    const exchange = new TryExchange(() => undefined);
    const timer = setTimeout(() => exchange.cancel(EXPORT_TIMEOUT), this.timeoutMs);
    this.pool.dispatch({ method: 'POST', path: this.path, headers: this.headers, body: this.request.body(spansJson) }, exchange);
    return exchange.response
      .then(async (response) => {
        // The body (a partial-success report at most) is not needed: accepted or not is the status.
        await response.body.discard();
        return response.statusCode < 300;
      })
      .catch(() => false)
      .finally(() => clearTimeout(timer));
  }

  async shutdown(): Promise<void> {
    await this.pool.close();
  }
}
