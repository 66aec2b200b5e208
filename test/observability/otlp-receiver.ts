/** A real OTLP/HTTP JSON traces receiver on 127.0.0.1, recording every span it is sent. */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  /** Nanoseconds since the epoch, as the decimal string OTLP/JSON carries. */
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly serviceName: unknown;
}

interface OtlpAttribute {
  key: string;
  value: Record<string, unknown>;
}

interface OtlpExport {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: { spans?: {
      traceId: string;
      spanId: string;
      parentSpanId?: string;
      name: string;
      kind: number;
      startTimeUnixNano: string | number;
      endTimeUnixNano: string | number;
      attributes?: OtlpAttribute[];
    }[] }[];
  }[];
}

function attributeMap(attributes: readonly OtlpAttribute[] = []): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (const { key, value } of attributes) map[key] = Object.values(value)[0];
  return map;
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly contentTypes: string[] = [];
  /** Request headers of every export received. */
  readonly requestHeaders: IncomingHttpHeaders[] = [];
  /** Status of the answers (a collector that refuses: 503). */
  status = 200;
  private held: (() => void)[] = [];
  private holding = false;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | null = null;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        receiver?.requestHeaders.push(request.headers);
        if (receiver?.status === 200) receiver.accept(request.url ?? '', request.headers['content-type'] ?? '', Buffer.concat(chunks).toString('utf8'));
        const answer = () => response.writeHead(receiver?.status ?? 200, { 'content-type': 'application/json' }).end('{}');
        if (receiver?.holding === true) receiver.held.push(answer);
        else answer();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    receiver = new OtlpReceiver(server, `http://127.0.0.1:${port}/v1/traces`);
    return receiver;
  }

  private accept(path: string, contentType: string, body: string): void {
    if (path !== '/v1/traces') return;
    this.contentTypes.push(contentType);
    const payload = JSON.parse(body) as OtlpExport;
    for (const resourceSpans of payload.resourceSpans ?? []) {
      const serviceName = attributeMap(resourceSpans.resource?.attributes)['service.name'];
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            kind: span.kind,
            startTimeUnixNano: String(span.startTimeUnixNano),
            endTimeUnixNano: String(span.endTimeUnixNano),
            attributes: attributeMap(span.attributes),
            serviceName,
          });
        }
      }
    }
  }

  /** Withhold responses (a slow collector) until `release()`. */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const answer of this.held.splice(0)) answer();
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
