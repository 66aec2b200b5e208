/**
 * What both Dapr pub/sub apps of the bench share (dapr-client.ts, the node publisher + app; dapr-app.ts,
 * the lean app behind wrk): the ledger of events by id, the HTTP/1.1 framing of the lean app, and the
 * window protocol with dapr-bench.ts.
 *
 * The window protocol, on the app's stdout and stdin, one line each: the app prints `{"phase":"ready"}`
 * once a probe made the whole trip, and waits for a line (the bench reads every process's CPU, then says
 * go); it prints `{"phase":"delivered"}` when every event arrived or the wait gave up, and waits for a
 * line again (the bench reads the CPU a second time); then it prints its report and exits. So the CPU
 * of every process is read over the same window, the throughput phase alone.
 */
import { createInterface } from 'node:readline';

export const READY_LINE = '{"phase":"ready"}';
export const DELIVERED_LINE = '{"phase":"delivered"}';

/** Every event of one run is numbered `first … first + count − 1`; which arrived, and how often. */
export class DeliveryLedger {
  private readonly seen: Uint8Array;
  private arrived = 0;
  /** Arrivals of an id already seen (at-least-once delivery may redeliver). */
  duplicated = 0;
  /** Ids of this run outside the expected range: a publisher that sent more than it said. */
  unexpected = 0;

  constructor(
    readonly first: number,
    readonly count: number,
  ) {
    this.seen = new Uint8Array(count);
  }

  /** Records one arrival of event `n`; true when it is the first arrival of an expected id. */
  record(n: number): boolean {
    const index = n - this.first;
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      this.unexpected++;
      return false;
    }
    if (this.seen[index] === 1) {
      this.duplicated++;
      return false;
    }
    this.seen[index] = 1;
    this.arrived++;
    return true;
  }

  get complete(): boolean {
    return this.arrived === this.count;
  }

  get lost(): number {
    return this.count - this.arrived;
  }

  /** The first `limit` ids that never arrived, for the failure message. */
  missing(limit: number): number[] {
    const ids: number[] = [];
    for (let index = 0; index < this.count && ids.length < limit; index++) if (this.seen[index] === 0) ids.push(this.first + index);
    return ids;
  }
}

export interface FramedRequest {
  readonly method: string;
  readonly path: string;
  readonly body: Buffer;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * HTTP/1.1 requests out of a byte stream, keep-alive and pipelined, bodies framed by content-length —
 * what sidecar B's deliveries are. Anything else (chunked bodies) throws: the lean app does not guess.
 */
export class RequestFramer {
  private pending: Buffer = Buffer.alloc(0);

  /** The requests complete after `chunk`; a partial one waits for the next chunk. */
  push(chunk: Buffer): FramedRequest[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const requests: FramedRequest[] = [];
    let offset = 0;
    for (;;) {
      const headerEnd = this.pending.indexOf(HEADER_END, offset);
      if (headerEnd === -1) break;
      const head = this.pending.toString('latin1', offset, headerEnd);
      const [requestLine = '', ...headers] = head.split('\r\n');
      const [method = '', path = ''] = requestLine.split(' ');
      let length = 0;
      for (const header of headers) {
        const colon = header.indexOf(':');
        const name = header.slice(0, colon).trim().toLowerCase();
        if (name === 'content-length') length = Number(header.slice(colon + 1).trim());
        else if (name === 'transfer-encoding') throw new Error(`the lean app takes content-length bodies only, got transfer-encoding: ${header.slice(colon + 1).trim()}`);
      }
      const bodyStart = headerEnd + HEADER_END.length;
      if (this.pending.length < bodyStart + length) break;
      requests.push({ method, path, body: this.pending.subarray(bodyStart, bodyStart + length) });
      offset = bodyStart + length;
    }
    this.pending = offset === this.pending.length ? Buffer.alloc(0) : this.pending.subarray(offset);
    return requests;
  }
}

/** The event `{ run, n }` inside a delivered CloudEvent; null for anything else. */
export function eventOf(body: Buffer | string): { readonly run: string; readonly n: number } | null {
  const envelope = JSON.parse(body.toString()) as { data?: { run?: unknown; n?: unknown } };
  const { run, n } = envelope.data ?? {};
  return typeof run === 'string' && typeof n === 'number' ? { run, n } : null;
}

/** The app side of the window protocol: print `line`, resolve on the bench's next line on stdin. */
export function announce(line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: process.stdin });
    const closed = (): void => reject(new Error('the bench closed stdin before answering'));
    lines.once('close', closed);
    lines.once('line', () => {
      lines.off('close', closed);
      lines.close();
      resolve();
    });
    process.stdout.write(`${line}\n`);
  });
}

const STALL_CHECK_MS = 250;

/**
 * Resolves once the ledger is complete, or when no new event arrived for `stallMs` (a broken pipeline
 * fails in seconds, not at the deadline), or at `deadlineMs` from now. Call `arrived()` on each new event.
 */
export function whenDelivered(ledger: DeliveryLedger, deadlineMs: number, stallMs: number): { readonly done: Promise<void>; arrived(): void } {
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let lastArrival = Date.now();
  const deadline = lastArrival + deadlineMs;
  const finish = (): void => {
    clearInterval(timer);
    resolveDone();
  };
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - lastArrival >= stallMs || now >= deadline) finish();
  }, STALL_CHECK_MS);
  if (ledger.complete) finish();
  return {
    done,
    arrived() {
      lastArrival = Date.now();
      if (ledger.complete) finish();
    },
  };
}

/** What an app prints after the window: one throughput run, counted by id. */
export interface ThroughputReport {
  readonly messages: number;
  /** From the bench's go to the last event's arrival (or to giving up). */
  readonly seconds: number;
  readonly messagesPerSecond: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly unexpected: number;
  /** The first few ids that never arrived. */
  readonly missing: readonly number[];
}

export function throughputReport(ledger: DeliveryLedger, seconds: number): ThroughputReport {
  return {
    messages: ledger.count,
    seconds,
    messagesPerSecond: (ledger.count - ledger.lost) / seconds,
    lost: ledger.lost,
    duplicated: ledger.duplicated,
    unexpected: ledger.unexpected,
    missing: ledger.missing(10),
  };
}
