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
  private readonly requestApi = loadUndiciRequest();

  constructor(
    readonly endpoint: AppEndpoint,
    timeoutMs: number,
    /** `APP_API_TOKEN`, sent as `dapr-api-token` so the app can tell its sidecar's calls apart. */
    private readonly appApiToken: string | null,
  ) {
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    this.origin = `http://${host}:${endpoint.port}`;
    this.pool = new Pool(this.origin, { connections: APP_CONNECTIONS, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  private async call(method: 'GET' | 'POST', path: string, body: Buffer | null, headers: Readonly<Record<string, string>>): Promise<AppAnswer> {
    const sent = this.appApiToken === null ? headers : { ...headers, 'dapr-api-token': this.appApiToken };
    // undici's index gives every dispatcher its request(); the pool's headersTimeout and bodyTimeout
    // are the deadline, so a delivery costs no timer and no URL parse.
    await this.requestApi;
    const response = await this.pool.request({ origin: this.origin, path, method, headers: sent, body });
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) chunks.push(chunk as Buffer);
    return { status: response.statusCode, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) };
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
