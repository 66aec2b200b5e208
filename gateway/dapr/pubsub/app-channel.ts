/**
 * The sidecar's HTTP channel to its local app (the Sidecar's `ingress[0].defaultEndpoint`): delivers
 * events and asks for `GET /dapr/subscribe`. One keep-alive pool per app endpoint; every call has a
 * deadline for the answer's headers and body, so an app that never answers costs one timeout, then a retry.
 */
import { loadUndiciRequest, Pool } from '../../upstream/undici-core.js';
import type { AppAnswer, AppChannel } from './delivery.js';

export interface AppEndpoint {
  readonly host: string;
  readonly port: number;
}

/** Deliveries at once per app; more wait in undici's queue. */
const APP_CONNECTIONS = 32;

export class HttpAppChannel implements AppChannel {
  private readonly pool: Pool;
  private readonly origin: string;

  constructor(
    readonly endpoint: AppEndpoint,
    private readonly timeoutMs: number,
    /** `APP_API_TOKEN`, sent as `dapr-api-token` so the app can tell its sidecar's calls apart. */
    private readonly appApiToken: string | null,
  ) {
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    this.origin = `http://${host}:${endpoint.port}`;
    this.pool = new Pool(this.origin, { connections: APP_CONNECTIONS, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  private async call(method: 'GET' | 'POST', path: string, body: Buffer | null, headers: Readonly<Record<string, string>>): Promise<AppAnswer> {
    const sent = this.appApiToken === null ? headers : { ...headers, 'dapr-api-token': this.appApiToken };
    const signal = AbortSignal.timeout(this.timeoutMs);
    const request = await loadUndiciRequest();
    const response = await request(`${this.origin}${path}`, { dispatcher: this.pool, method, headers: sent, body, signal });
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) chunks.push(chunk as Buffer);
    return { status: response.statusCode, body: Buffer.concat(chunks) };
  }

  post(path: string, body: Buffer, headers: Readonly<Record<string, string>>): Promise<AppAnswer> {
    return this.call('POST', path, body, headers);
  }

  get(path: string): Promise<AppAnswer> {
    return this.call('GET', path, null, {});
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
