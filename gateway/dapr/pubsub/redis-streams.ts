/**
 * `pubsub.redis`: Redis Streams with Dapr's layout (components-contrib `pubsub/redis`). The stream is
 * the topic name; an entry holds `data` (the envelope bytes) and `metadata` (JSON of the publish
 * metadata). Consumers read with XREADGROUP in group = consumer name = `consumerID` (the app id), so
 * replicas share the work. An entry is XACKed only after its handler said `ack`; a `nack`, a crash or
 * a restart leaves it pending, and the reclaim loop takes it back (XPENDING, XCLAIM) once it has been idle
 * for `processingTimeout` — the classic at-least-once behaviour, not contrib ≥1.17's ack-on-error.
 *
 * Three kinds of connection, because they fail differently: publishes fail fast (no offline queue)
 * so the API answers ERR_PUBSUB_PUBLISH_MESSAGE at once during an outage; each subscription blocks in
 * XREADGROUP on its own connection; acks and reclaims go through a control connection that queues
 * while Redis is away, so an ack issued during an outage lands once Redis is back instead of being lost.
 */
import type { Writable } from 'node:stream';
import type { Redis, RedisOptions } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { closeRedisClient, redisClass } from '../../redis/client.js';
import { TurnWrites } from './turn-writes.js';
import { AckWindow } from './ack-window.js';
import { BrokerConfigError, CLOSE_DRAIN_MS, metadataDurationMs, metadataInteger, removeItem, settledWithin } from './broker.js';
import type { BrokerMessage, BrokerSubscription, MessageHandler, PubSubBroker, SubscribeOptions } from './broker.js';

const DEFAULT_PROCESSING_TIMEOUT_MS = 60_000;
const DEFAULT_REDELIVER_INTERVAL_MS = 15_000;
const DEFAULT_QUEUE_DEPTH = 100;
const DEFAULT_CONCURRENCY = 10;
/** How long one XREADGROUP blocks; bounds how long `close()` waits for the read to come back. */
const READ_BLOCK_MS = 1000;
const PUBLISH_TIMEOUT_MS = 2000;
/**
 * ioredis's states of a connection attempt that cannot take a command yet: not started, the TCP connect,
 * and `connect`: the socket is open but the ready check (INFO) is not answered, so the command would fail
 * at once with the offline queue off.
 */
const CONNECTION_BEING_MADE: ReadonlySet<string> = new Set(['wait', 'connecting', 'connect']);
const RECONNECT_STEP_MS = 100;
const RECONNECT_MAX_MS = 1000;
const READ_ERROR_PAUSE_MS = 250;

export interface RedisStreamsSettings {
  readonly host: string;
  readonly port: number;
  readonly password: string | undefined;
  readonly username: string | undefined;
  readonly db: number;
  readonly tls: boolean;
  readonly processingTimeoutMs: number;
  readonly redeliverIntervalMs: number;
  readonly queueDepth: number;
  readonly concurrency: number;
  readonly maxLenApprox: number | undefined;
}

/** Reads Dapr's `pubsub.redis` metadata; throws BrokerConfigError naming the field. */
export function redisStreamsSettings(metadata: Readonly<Record<string, string>>): RedisStreamsSettings {
  const address = metadata['redisHost']?.trim();
  if (address === undefined || address === '') throw new BrokerConfigError('redisHost', 'is required (host:port)');
  const colon = address.lastIndexOf(':');
  const host = colon === -1 ? address : address.slice(0, colon);
  const port = colon === -1 ? 6379 : Number(address.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new BrokerConfigError('redisHost', `bad port in ${JSON.stringify(address)}`);
  if (metadata['maxLenApprox'] !== undefined && metadata['streamTTL'] !== undefined) {
    throw new BrokerConfigError('streamTTL', 'maxLenApprox and streamTTL exclude each other');
  }
  if (metadata['streamTTL'] !== undefined) throw new BrokerConfigError('streamTTL', 'is not supported; use maxLenApprox');
  const maxLen = metadata['maxLenApprox'] === undefined ? undefined : metadataInteger(metadata, 'maxLenApprox', 0, 1);
  return {
    host: host.replace(/^\[(.*)\]$/, '$1'),
    port,
    password: metadata['redisPassword'] || undefined,
    username: metadata['redisUsername'] || undefined,
    db: metadataInteger(metadata, 'redisDB', 0),
    tls: (metadata['enableTLS'] ?? '').toLowerCase() === 'true',
    processingTimeoutMs: metadataDurationMs(metadata, 'processingTimeout', DEFAULT_PROCESSING_TIMEOUT_MS),
    redeliverIntervalMs: metadataDurationMs(metadata, 'redeliverInterval', DEFAULT_REDELIVER_INTERVAL_MS),
    queueDepth: metadataInteger(metadata, 'queueDepth', DEFAULT_QUEUE_DEPTH, 1),
    concurrency: metadataInteger(metadata, 'concurrency', DEFAULT_CONCURRENCY, 1),
    maxLenApprox: maxLen,
  };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** `[id, [field, value, …]]` from XREADGROUP/XCLAIM replies, in Buffers (fields null: the entry was deleted). */
type RawEntry = [Buffer, Buffer[] | null];

function toMessage(entry: RawEntry): BrokerMessage | null {
  const [id, fields] = entry;
  if (fields === null) return null;
  let data: Buffer | undefined;
  let metadata: Record<string, string> = {};
  for (let index = 0; index + 1 < fields.length; index += 2) {
    const name = fields[index]?.toString();
    const value = fields[index + 1];
    if (value === undefined) continue;
    if (name === 'data') data = value;
    else if (name === 'metadata') {
      try {
        const parsed = JSON.parse(value.toString()) as unknown;
        if (parsed !== null && typeof parsed === 'object') metadata = parsed as Record<string, string>;
      } catch {
        // Metadata is advisory (it becomes headers); an entry written by another tool may lack it.
      }
    }
  }
  return { brokerId: id.toString(), data: data ?? Buffer.alloc(0), metadata };
}

/**
 * One subscription's consumer, as Dapr runs it: XREADGROUP reads up to `queueDepth` entries at a time
 * into a local queue, and `concurrency` workers hand them to the handler. Queued entries are already
 * pending in the group, so one the sidecar never handles (closed, crashed) is reclaimed like any other.
 */
class StreamSubscription implements BrokerSubscription {
  private closed = false;
  /** Read, not yet handed to a worker. */
  private readonly queued: BrokerMessage[] = [];
  /** Handed to a worker and not settled yet (an array searched by id: see removeItem). */
  private readonly handling: { readonly id: string; readonly settled: Promise<void> }[] = [];
  private roomWaiter: (() => void) | null = null;
  private readonly readLoop: Promise<void>;
  private readonly reclaimTimer: NodeJS.Timeout | undefined;
  private reclaiming = false;
  /** Acked by the handler, waiting to go out in one XACK with the others of the window. */
  private readonly acks: AckWindow<string>;
  /** The XACKs not answered yet: their entries are still pending in the group, and not to be reclaimed. */
  private readonly sending: { readonly ids: readonly string[]; readonly sent: Promise<void> }[] = [];
  /** The read-ahead is refilled once the local queue is down to this: one XREADGROUP per many entries, not one per entry handled. */
  private readonly refillAt: number;

  constructor(
    private readonly reader: Redis,
    private readonly control: Redis,
    private readonly settings: RedisStreamsSettings,
    private readonly topic: string,
    private readonly group: string,
    private readonly handler: MessageHandler,
    private readonly logger: FastifyBaseLogger,
  ) {
    this.refillAt = Math.floor(settings.queueDepth / 2);
    this.acks = new AckWindow(this.sendAcks, settings.queueDepth);
    this.readLoop = this.read();
    if (settings.processingTimeoutMs > 0 && settings.redeliverIntervalMs > 0) {
      this.reclaimTimer = setInterval(() => void this.reclaim(), settings.redeliverIntervalMs);
      this.reclaimTimer.unref();
    }
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.control.xgroup('CREATE', this.topic, this.group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).startsWith('BUSYGROUP')) throw error;
    }
  }

  private async read(): Promise<void> {
    let groupReady = false;
    while (!this.closed) {
      try {
        if (!groupReady) {
          await this.ensureGroup();
          groupReady = true;
        }
        await this.queueRoom();
        if (this.closed) break;
        const reply = (await this.reader.callBuffer(
          'XREADGROUP', 'GROUP', this.group, this.group, 'COUNT', this.settings.queueDepth - this.queued.length, 'BLOCK', READ_BLOCK_MS, 'STREAMS', this.topic, '>',
        )) as Array<[Buffer, RawEntry[]]> | null;
        for (const [, entries] of reply ?? []) for (const entry of entries) this.enqueue(entry);
      } catch (error) {
        if (this.closed) break;
        const message = (error as Error).message;
        if (message.includes('NOGROUP')) groupReady = false;
        this.logger.warn({ topic: this.topic, group: this.group, err: message }, 'pubsub.redis: reading the stream failed; retrying');
        await pause(READ_ERROR_PAUSE_MS);
      }
    }
  }

  /** Resolves once the local queue is down to the refill mark. */
  private queueRoom(): Promise<void> {
    if (this.queued.length <= this.refillAt) return Promise.resolve();
    return new Promise((resolve) => (this.roomWaiter = resolve));
  }

  private enqueue(entry: RawEntry): void {
    const message = toMessage(entry);
    if (message === null || this.inHand(message.brokerId)) return;
    this.queued.push(message);
    this.startWorkers();
  }

  private startWorkers(): void {
    while (!this.closed && this.handling.length < this.settings.concurrency && this.queued.length > 0) {
      const message = this.queued.shift() as BrokerMessage;
      const handling = {
        id: message.brokerId,
        settled: this.handle(message).finally(() => {
          removeItem(this.handling, handling);
          this.startWorkers();
        }),
      };
      this.handling.push(handling);
    }
    if (this.queued.length <= this.refillAt) {
      const waiter = this.roomWaiter;
      this.roomWaiter = null;
      waiter?.();
    }
  }

  private async handle(message: BrokerMessage): Promise<void> {
    let verdict;
    try {
      verdict = await this.handler(message);
    } catch (error) {
      this.logger.error({ topic: this.topic, id: message.brokerId, err: (error as Error).message }, 'pubsub.redis: handler failed; the entry stays pending');
      return;
    }
    if (verdict === 'ack') this.ack(message.brokerId);
  }

  /**
   * Acks of one window go out as one XACK with all their ids (AckWindow). The worker is free as soon
   * as its handler answered: waiting for the XACK's round trip held a delivery slot for nothing.
   */
  private ack(id: string): void {
    this.acks.add(id);
  }

  /** Handled now, or acked and the XACK not answered yet. */
  private inHand(id: string): boolean {
    return this.handling.some((handling) => handling.id === id) || this.acks.includes(id) || this.sending.some((sending) => sending.ids.includes(id));
  }

  private readonly sendAcks = (ids: string[]): void => {
    const sent = this.control.xack(this.topic, this.group, ...ids).then(
      () => undefined,
      (error: unknown) => {
        // The entries stay pending and are redelivered after processingTimeout: at-least-once, never lost.
        this.logger.warn({ topic: this.topic, ids: ids.length, err: (error as Error).message }, 'pubsub.redis: XACK failed; the entries will be redelivered');
      },
    );
    const sending = { ids, sent };
    this.sending.push(sending);
    void sent.finally(() => removeItem(this.sending, sending));
  };

  /**
   * Takes back entries idle for processingTimeout (their consumer died, or the handler said nack).
   * Every replica of an app reads as the same consumer, so an entry this one still has in hand (a slow
   * handler) is left alone rather than claimed again: claiming resets its idle time, and would keep the
   * other replicas from ever taking it over.
   */
  private async reclaim(): Promise<void> {
    if (this.reclaiming || this.closed || this.control.status !== 'ready') return;
    this.reclaiming = true;
    try {
      const free = this.settings.queueDepth - this.queued.length;
      if (free <= 0) return;
      const minIdle = Math.ceil(this.settings.processingTimeoutMs);
      const pending = (await this.control.call('XPENDING', this.topic, this.group, 'IDLE', minIdle, '-', '+', free + this.handling.length)) as [string, string, number, number][];
      const ids = pending
        .map(([id]) => id)
        .filter((id) => !this.inHand(id) && !this.queued.some((queued) => queued.brokerId === id))
        .slice(0, free);
      if (ids.length === 0) return;
      // XCLAIM re-checks the idle time, so of two replicas reclaiming at once only one gets each entry.
      const claimed = (await this.control.callBuffer('XCLAIM', this.topic, this.group, this.group, minIdle, ...ids)) as RawEntry[];
      const gone: string[] = [];
      for (const entry of claimed) {
        if (entry[1] === null) gone.push(entry[0].toString());
        else this.enqueue(entry);
      }
      // Entries trimmed away (maxLenApprox) while pending can never be delivered; settle them (Redis 7 drops them itself).
      if (gone.length > 0) await this.control.xack(this.topic, this.group, ...gone);
    } catch (error) {
      if (!this.closed) this.logger.warn({ topic: this.topic, err: (error as Error).message }, 'pubsub.redis: reclaiming pending entries failed');
    } finally {
      this.reclaiming = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reclaimTimer !== undefined) clearInterval(this.reclaimTimer);
    // Queued entries were never handed to the app: they stay pending in the group and are reclaimed.
    this.queued.length = 0;
    this.roomWaiter?.();
    this.reader.disconnect();
    await this.readLoop;
    await settledWithin(Promise.all(this.handling.map((handling) => handling.settled)), CLOSE_DRAIN_MS);
    this.acks.flush();
    await settledWithin(Promise.all(this.sending.map((sending) => sending.sent)), CLOSE_DRAIN_MS);
  }
}

export class RedisStreamsBroker implements PubSubBroker {
  readonly capabilities: readonly string[] = [];
  private readonly publisher: Redis;
  private readonly control: Redis;
  private readonly subscriptions = new Set<StreamSubscription>();
  private readonly turnWrites = new TurnWrites();
  private readonly trim: readonly (string | number)[];

  constructor(
    private readonly settings: RedisStreamsSettings,
    private readonly logger: FastifyBaseLogger,
  ) {
    this.publisher = this.connect({ enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: PUBLISH_TIMEOUT_MS });
    this.control = this.connect({ maxRetriesPerRequest: null });
    this.trim = settings.maxLenApprox === undefined ? [] : ['MAXLEN', '~', settings.maxLenApprox];
  }

  private connect(overrides: RedisOptions): Redis {
    const client = new (redisClass())({
      host: this.settings.host,
      port: this.settings.port,
      password: this.settings.password,
      username: this.settings.username,
      db: this.settings.db,
      ...(this.settings.tls ? { tls: {} } : {}),
      connectTimeout: PUBLISH_TIMEOUT_MS,
      retryStrategy: (attempt: number) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS),
      ...overrides,
    });
    // Without a listener ioredis throws; the read loop and publish errors already report outages.
    client.on('error', () => {});
    return client;
  }

  async publish(topic: string, data: Buffer, metadata: Readonly<Record<string, string>>): Promise<void> {
    if (CONNECTION_BEING_MADE.has(this.publisher.status)) {
      // A publish that arrives while the connection is being made waits for that attempt only.
      await new Promise<void>((resolve) => {
        const done = (): void => resolve();
        this.publisher.once('ready', done);
        this.publisher.once('error', done);
        setTimeout(done, PUBLISH_TIMEOUT_MS).unref();
      });
    }
    this.holdWritesForTheTurn();
    await this.publisher.xadd(topic, ...this.trim, '*', 'data', data, 'metadata', JSON.stringify(metadata));
  }

  /** Corks before the XADD is written: ioredis writes a ready connection's command at once. */
  private holdWritesForTheTurn(): void {
    const socket = this.publisher.stream as Writable | undefined;
    if (socket !== undefined && this.publisher.status === 'ready') this.turnWrites.hold(socket);
  }

  async subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<BrokerSubscription> {
    const reader = this.connect({ maxRetriesPerRequest: null });
    const subscription = new StreamSubscription(reader, this.control, this.settings, options.topic, options.consumerGroup, handler, this.logger);
    this.subscriptions.add(subscription);
    return {
      close: async () => {
        this.subscriptions.delete(subscription);
        await subscription.close();
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    this.subscriptions.clear();
    for (const client of [this.publisher, this.control]) await closeRedisClient(client);
  }
}
