/**
 * The sidecar's HTTP channel to its local app (the Sidecar's `ingress[0].defaultEndpoint`): delivers
 * events and asks for `GET /dapr/subscribe`. One keep-alive pool per app endpoint; every call has a
 * deadline for the answer's headers and body, so an app that never answers costs one timeout, then a retry.
 */
import type { Dispatcher } from 'undici';
import { Pool } from '../../upstream/undici-core.js';
import type { AppAnswer, AppChannel } from './delivery.js';

export interface AppEndpoint {
  readonly host: string;
  readonly port: number;
}

/** Deliveries at once per app; more wait in undici's queue. */
const APP_CONNECTIONS = 32;

/**
 * One call into the app, its answer read whole. A dispatch handler rather than undici's `request`:
 * answers are small and always read to the end, so the body needs no stream (measured as the largest
 * share of a delivering sidecar's CPU per message).
 */
class AppCall implements Dispatcher.DispatchHandler {
  readonly answer: Promise<AppAnswer>;
  private resolve!: (answer: AppAnswer) => void;
  private reject!: (error: Error) => void;
  private status = 0;
  private readonly chunks: Buffer[] = [];

  constructor() {
    this.answer = new Promise<AppAnswer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Present so that undici takes this for a handler of its current interface (it has nothing to do here). */
  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    // 1xx informational answers precede the real one.
    if (statusCode >= 200) this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    const { chunks } = this;
    this.resolve({ status: this.status, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.reject(error);
  }
}

export class HttpAppChannel implements AppChannel {
  private readonly pool: Pool;

  constructor(
    readonly endpoint: AppEndpoint,
    timeoutMs: number,
    /** `APP_API_TOKEN`, sent as `dapr-api-token` so the app can tell its sidecar's calls apart. */
    private readonly appApiToken: string | null,
  ) {
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    // The pool's headersTimeout and bodyTimeout are the deadline: a delivery costs no timer of its own.
    this.pool = new Pool(`http://${host}:${endpoint.port}`, { connections: APP_CONNECTIONS, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  private call(method: 'GET' | 'POST', path: string, body: Buffer | null, headers: Readonly<Record<string, string>>): Promise<AppAnswer> {
    const sent = this.appApiToken === null ? headers : { ...headers, 'dapr-api-token': this.appApiToken };
    const call = new AppCall();
    this.pool.dispatch({ method, path, headers: sent, body }, call);
    return call.answer;
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
