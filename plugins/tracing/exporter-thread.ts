/**
 * The span export thread: it posts the batches of spans the runtime hands over (exporter.ts) to
 * the collector (otlp-exporter.ts) and answers whether each was accepted.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OtlpJsonExporter } from './otlp-exporter.js';

export interface ExporterThreadOptions {
  readonly url: string;
  readonly serviceName: string;
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
}

export type ToExporterThread = { readonly kind: 'export'; readonly id: number; readonly spansJson: Uint8Array } | { readonly kind: 'shutdown'; readonly id: number };

export type FromExporterThread = { readonly kind: 'exported'; readonly id: number; readonly accepted: boolean } | { readonly kind: 'closed'; readonly id: number };

const port = parentPort;
if (port === null) throw new Error('exporter-thread.js runs as a worker thread');
const parent = port;
const options = workerData as ExporterThreadOptions;
const exporter = new OtlpJsonExporter(options.url, options.serviceName, options.timeoutMs, options.headers);

parent.on('message', (message: ToExporterThread) => {
  if (message.kind === 'export') {
    void exporter.export(message.spansJson).then((accepted) => parent.postMessage({ kind: 'exported', id: message.id, accepted } satisfies FromExporterThread));
  } else {
    // Closing the pool can fail (a request it could not end); the answer is the same, so that nobody waits forever.
    void exporter
      .shutdown()
      .catch(() => undefined)
      .then(() => parent.postMessage({ kind: 'closed', id: message.id } satisfies FromExporterThread));
  }
});
