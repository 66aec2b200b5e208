/** Sends hand-written HTTP/1.1 requests on one socket, so a test knows the exact bytes on the wire. */
import { connect } from 'node:net';
import type { Socket } from 'node:net';

export interface RawExchange {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Bytes of the whole response as received (status line, headers, body). */
  readonly responseBytes: number;
}

export class RawHttpClient {
  private buffered = Buffer.alloc(0);
  private waiter: (() => void) | null = null;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiter?.();
    });
  }

  static async connect(port: number): Promise<RawHttpClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawHttpClient(socket);
  }

  /** `request` must be a complete HTTP/1.1 message with Content-Length framing. */
  async exchange(request: string): Promise<RawExchange> {
    this.socket.write(request);
    const deadline = Date.now() + 5000;
    for (;;) {
      const parsed = this.tryParse();
      if (parsed !== null) return parsed;
      if (Date.now() > deadline) throw new Error('no complete response within 5 s');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private tryParse(): RawExchange | null {
    const headerEnd = this.buffered.indexOf('\r\n\r\n');
    if (headerEnd === -1) return null;
    const [statusLine = '', ...headerLines] = this.buffered.subarray(0, headerEnd).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const total = headerEnd + 4 + length;
    if (this.buffered.length < total) return null;
    const body = this.buffered.subarray(headerEnd + 4, total).toString('utf8');
    this.buffered = this.buffered.subarray(total);
    return { status: Number(statusLine.split(' ')[1]), headers, body, responseBytes: total };
  }

  close(): void {
    this.socket.destroy();
  }
}
