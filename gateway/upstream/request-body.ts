/**
 * Request bodies and retries. Up to 64 KiB is buffered so that small bodies (most POSTs) can be sent
 * again on a retry; a larger body is streamed — its first 64 KiB from the buffer, the rest straight
 * from the client — and can be sent again only while no byte of it was handed to a try (a connect
 * failure). Each try reads the client stream through its own view, so a failed try never destroys it.
 */
import { Readable } from 'node:stream';
import type { CancelSignal } from './cancellation.js';

export const RETRY_BUFFER_LIMIT = 64 * 1024;

export type PreparedBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'buffered'; readonly data: Buffer }
  | { readonly kind: 'stream'; view(): Readable; started(): boolean; replayable(): boolean };

export const NO_BODY: PreparedBody = Object.freeze({ kind: 'none' });

interface SourceState {
  ended: boolean;
  error: Error | null;
  wake: (() => void) | null;
}

/** What a streamed body's views read from the source, kept while it stays within the retry buffer. */
interface Recording {
  readonly chunks: Buffer[];
  bytes: number;
  overflowed: boolean;
}

class SourceView extends Readable {
  private next = 0;
  started = false;

  constructor(
    private readonly prefix: readonly Buffer[],
    private readonly source: Readable,
    private readonly state: SourceState,
    private readonly recording: Recording | null = null,
  ) {
    super();
  }

  override _read(): void {
    this.started = true;
    if (this.next < this.prefix.length) {
      this.push(this.prefix[this.next++]);
      return;
    }
    this.pump();
  }

  private readonly pump = (): void => {
    this.state.wake = null;
    for (;;) {
      const chunk: unknown = this.source.read();
      if (chunk === null) break;
      if (this.recording !== null) record(this.recording, chunk as Buffer);
      if (!this.push(chunk)) return;
    }
    if (this.state.error !== null) this.destroy(this.state.error);
    else if (this.state.ended) this.push(null);
    else this.state.wake = this.pump;
  };

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.state.wake === this.pump) this.state.wake = null;
    callback(error);
  }
}

function record(recording: Recording, chunk: Buffer): void {
  if (recording.overflowed) return;
  recording.bytes += chunk.length;
  if (recording.bytes > RETRY_BUFFER_LIMIT) {
    recording.overflowed = true;
    recording.chunks.length = 0;
  } else recording.chunks.push(chunk);
}

/**
 * A body sent as it arrives, never held back (a gRPC stream's messages may each wait for a reply), and
 * recorded meanwhile: once it has ended within the retry buffer, a retry sends the recording.
 */
export function streamBody(body: Readable): PreparedBody {
  const state = track(body);
  const recording: Recording = { chunks: [], bytes: 0, overflowed: false };
  let lastView: SourceView | null = null;
  const replayable = (): boolean => state.ended && state.error === null && !recording.overflowed;
  return {
    kind: 'stream',
    view() {
      lastView = lastView !== null && replayable() ? new SourceView(recording.chunks.slice(), body, state) : new SourceView([], body, state, recording);
      return lastView;
    },
    started: () => lastView?.started === true,
    replayable,
  };
}

function track(source: Readable): SourceState {
  const state: SourceState = { ended: source.readableEnded, error: null, wake: null };
  const wake = (): void => state.wake?.();
  source.on('readable', wake);
  source.once('end', () => {
    state.ended = true;
    wake();
  });
  source.once('error', (error: Error) => {
    state.error = error;
    wake();
  });
  return state;
}

/** Reads up to `limit` bytes; resolves with a buffer when the whole body fit, else with a streaming body. */
export async function prepareBody(
  body: Readable | null,
  signal: CancelSignal | null,
  limit = RETRY_BUFFER_LIMIT,
): Promise<PreparedBody> {
  if (body === null) return NO_BODY;
  const state = track(body);
  const onAbort = (): void => state.wake?.();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await bufferOrStream(body, state, signal, limit);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

async function bufferOrStream(body: Readable, state: SourceState, signal: CancelSignal | null, limit: number): Promise<PreparedBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const chunk: unknown = body.read();
    if (chunk !== null) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      chunks.push(buffer);
      size += buffer.length;
      if (size > limit) break;
      continue;
    }
    if (state.error !== null) throw state.error;
    if (signal?.aborted === true) throw signal.reason;
    if (state.ended) return size === 0 ? NO_BODY : { kind: 'buffered', data: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) };
    await new Promise<void>((resolve) => {
      state.wake = resolve;
    });
    state.wake = null;
  }
  let lastView: SourceView | null = null;
  return {
    kind: 'stream',
    view() {
      lastView = new SourceView(chunks, body, state);
      return lastView;
    },
    started: () => lastView?.started === true,
    replayable: () => false,
  };
}
