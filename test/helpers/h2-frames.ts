/**
 * A tiny HTTP/2 frame codec for tests that must send what no well-behaved client library sends
 * (RFC 9113 §4, §6): raw HEADERS with any header bytes, RST_STREAM floods, zero WINDOW_UPDATEs. Header
 * blocks use HPACK "literal header field without indexing — new name" (RFC 7541 §6.2.2) only, which
 * needs no table state, and no Huffman coding.
 */
import tls from 'node:tls';

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR_CODE = { NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, CANCEL: 0x8, ENHANCE_YOUR_CALM: 0xb } as const;
export const SETTING = { MAX_CONCURRENT_STREAMS: 0x3 } as const;

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` carries the pattern bits above the prefix. */
function hpackInteger(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function hpackString(value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(hpackInteger(value.length, 7, 0)), value]);
}

/** A header block of literal fields, names and values taken byte for byte (so they may be invalid on purpose). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    parts.push(Buffer.from([0x00]), hpackString(Buffer.from(name, 'latin1')), hpackString(Buffer.from(value, 'latin1')));
  }
  return Buffer.concat(parts);
}

export function headers(streamId: number, fields: readonly (readonly [string, string])[], endStream = true): Buffer {
  return frame(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), streamId, headerBlock(fields));
}

export function rstStream(streamId: number, code: number = ERROR_CODE.CANCEL): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, payload);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment);
  return frame(FRAME.WINDOW_UPDATE, 0, streamId, payload);
}

export function settings(entries: readonly (readonly [number, number])[] = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], index) => {
    payload.writeUInt16BE(id, index * 6);
    payload.writeUInt32BE(value, index * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** Splits a byte stream into frames; keeps a partial frame for the next chunk. */
export class FrameReader {
  private buffered = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const frames: Frame[] = [];
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) break;
      frames.push({
        type: this.buffered.readUInt8(3),
        flags: this.buffered.readUInt8(4),
        streamId: this.buffered.readUInt32BE(5) & 0x7fffffff,
        payload: this.buffered.subarray(9, 9 + length),
      });
      this.buffered = this.buffered.subarray(9 + length);
    }
    return frames;
  }
}

export function settingsOf(payload: Buffer): Map<number, number> {
  const values = new Map<number, number>();
  for (let offset = 0; offset + 6 <= payload.length; offset += 6) values.set(payload.readUInt16BE(offset), payload.readUInt32BE(offset + 2));
  return values;
}

/** A raw HTTP/2 connection over TLS (ALPN h2) that records every frame the server sends. */
export class RawH2Connection {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly reader = new FrameReader();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      for (const received of this.reader.push(chunk)) {
        this.frames.push(received);
        // Settings must be acknowledged or the server times the connection out.
        if (received.type === FRAME.SETTINGS && (received.flags & FLAG.ACK) === 0) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(options: { port: number; servername: string; ca: string }): Promise<RawH2Connection> {
    const socket = tls.connect({ host: '127.0.0.1', port: options.port, servername: options.servername, ca: options.ca, ALPNProtocols: ['h2'] });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN negotiated ${String(socket.alpnProtocol)}, not h2`);
    const connection = new RawH2Connection(socket);
    socket.write(Buffer.concat([CLIENT_PREFACE, settings()]));
    return connection;
  }

  write(bytes: Buffer): boolean {
    return this.socket.write(bytes);
  }

  /** Resolves with the first frame that `match` accepts (or null once the connection closed or the deadline passed). */
  async waitFor(match: (received: Frame) => boolean, deadlineMs = 30_000): Promise<Frame | null> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found !== undefined) return found;
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}
