/**
 * `pubsub.rabbitmq` over amqplib, with Dapr's naming (components-contrib `pubsub/rabbitmq`): one
 * exchange per topic (fanout unless `exchangeKind` says otherwise), one queue per consumer group,
 * `<consumerID>-<topic>` (or the subscription's `queueName`), bound with `routingKey` (comma-separated).
 * With `enableDeadLetter` the queue dead-letters into exchange `dlx-<queue>` and queue `dlq-<queue>`.
 *
 * Publishes go through ONE confirm channel and resolve only on the broker's ack, so a 204 means the
 * broker has the message. A delivery is acked only after its handler said `ack`; a `nack` is requeued
 * (`requeueInFailure`, default true here, false in Dapr where the runtime's resiliency retries instead)
 * or, with a dead-letter exchange, dead-lettered. Where meshgate's defaults differ from Dapr's (durable
 * exchanges and queues, persistent messages, requeue on failure) it is for at-least-once across restarts.
 *
 * The connection is made on first use and remade after a loss: publishes during an outage fail at once,
 * subscriptions re-declare and re-consume with backoff until the broker is back.
 */
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import type * as Amqp from 'amqplib';
import type { FastifyBaseLogger } from 'fastify';
import { TurnWrites } from './turn-writes.js';
import { ChannelAcks } from './rabbitmq-acks.js';
import { BrokerConfigError, CLOSE_DRAIN_MS, metadataBoolean, metadataInteger, removeItem, settledWithin } from './broker.js';
import type { BrokerSubscription, MessageHandler, PubSubBroker, SubscribeOptions } from './broker.js';

const CONNECT_TIMEOUT_MS = 2000;
const RESUBSCRIBE_STEP_MS = 200;
const RESUBSCRIBE_MAX_MS = 2000;
/** Dapr's default is 0, no limit; a bound keeps a backlog from flooding the app (the deliveries in flight). */
const DEFAULT_PREFETCH = 100;

function amqplib(): typeof Amqp {
  return createRequire(import.meta.url)('amqplib') as typeof Amqp;
}

export interface RabbitMqSettings {
  readonly url: string;
  readonly durable: boolean;
  readonly deletedWhenUnused: boolean;
  readonly exchangeKind: string;
  readonly persistent: boolean;
  readonly prefetchCount: number;
  readonly enableDeadLetter: boolean;
  readonly requeueInFailure: boolean;
  readonly ttlSeconds: number | undefined;
  readonly maxLen: number | undefined;
}

function connectionUrl(metadata: Readonly<Record<string, string>>): string {
  // Older Dapr releases (and the seed's component) give the URL as `host`.
  const given = metadata['connectionString']?.trim() || metadata['host']?.trim();
  if (given !== undefined && given !== '') {
    if (!/^amqps?:\/\//.test(given)) throw new BrokerConfigError(metadata['connectionString'] ? 'connectionString' : 'host', `expected amqp://user:pass@host:port, got ${JSON.stringify(safeUrl(given))}`);
    return given;
  }
  const hostname = metadata['hostname']?.trim();
  if (hostname === undefined || hostname === '') {
    throw new BrokerConfigError('connectionString', 'is required (or host, or hostname)');
  }
  const protocol = metadata['protocol']?.trim() || 'amqp';
  const user = encodeURIComponent(metadata['username'] ?? 'guest');
  const password = encodeURIComponent(metadata['password'] ?? 'guest');
  return `${protocol}://${user}:${password}@${hostname}`;
}

export function rabbitMqSettings(metadata: Readonly<Record<string, string>>): RabbitMqSettings {
  const exchangeKind = metadata['exchangeKind']?.trim() || 'fanout';
  if (!['fanout', 'topic', 'direct', 'headers'].includes(exchangeKind)) {
    throw new BrokerConfigError('exchangeKind', `expected fanout, topic, direct or headers, got ${JSON.stringify(exchangeKind)}`);
  }
  const deliveryMode = metadataInteger(metadata, 'deliveryMode', 2);
  return {
    url: connectionUrl(metadata),
    durable: metadataBoolean(metadata, 'durable', true),
    deletedWhenUnused: metadataBoolean(metadata, 'deletedWhenUnused', false),
    exchangeKind,
    persistent: deliveryMode === 2,
    prefetchCount: metadataInteger(metadata, 'prefetchCount', DEFAULT_PREFETCH, 1),
    enableDeadLetter: metadataBoolean(metadata, 'enableDeadLetter', false),
    requeueInFailure: metadataBoolean(metadata, 'requeueInFailure', true),
    ttlSeconds: metadata['ttlInSeconds'] === undefined ? undefined : metadataInteger(metadata, 'ttlInSeconds', 0, 1),
    maxLen: metadata['maxLen'] === undefined ? undefined : metadataInteger(metadata, 'maxLen', 0, 1),
  };
}

/** The URL with its password hidden, for logs. */
function safeUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}

class RabbitSubscription implements BrokerSubscription {
  private closed = false;
  private channel: Amqp.Channel | null = null;
  private acks: ChannelAcks | null = null;
  private consumerTag: string | null = null;
  /** Deliveries being handled (an array: see removeItem). */
  private readonly inFlight: Promise<void>[] = [];
  private readonly running: Promise<void>;
  private wake: (() => void) | null = null;
  private firstAttemptDone: () => void = () => undefined;
  /** Settles once the first setup attempt is over (queue declared, bound and consumed, or failed and retrying). */
  readonly firstAttempt = new Promise<void>((resolve) => (this.firstAttemptDone = resolve));

  constructor(
    private readonly broker: RabbitMqBroker,
    private readonly settings: RabbitMqSettings,
    private readonly options: SubscribeOptions,
    private readonly handler: MessageHandler,
    private readonly logger: FastifyBaseLogger,
  ) {
    this.running = this.run();
  }

  private get queueName(): string {
    return this.options.metadata['queueName']?.trim() || `${this.options.consumerGroup}-${this.options.topic}`;
  }

  /** Consumes until closed; after a lost channel or connection, sets everything up again with backoff. */
  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const lost = await this.consumeOnce();
        failures = 0;
        await lost;
      } catch (error) {
        this.firstAttemptDone();
        if (this.closed) break;
        failures++;
        this.logger.warn({ topic: this.options.topic, queue: this.queueName, err: (error as Error).message }, 'pubsub.rabbitmq: subscribing failed; retrying');
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, Math.min(failures * RESUBSCRIBE_STEP_MS, RESUBSCRIBE_MAX_MS)).unref();
        });
      }
    }
    this.firstAttemptDone();
  }

  /** Sets up one channel and its consumer; resolves with a promise that settles when that channel is gone. */
  private async consumeOnce(): Promise<Promise<void>> {
    const connection = await this.broker.connection();
    const channel = await connection.createChannel();
    const lost = new Promise<void>((resolve) => {
      channel.once('close', resolve);
      channel.on('error', () => {});
      this.wake = resolve;
    });
    this.channel = channel;
    const { topic } = this.options;
    const queue = this.queueName;
    await channel.prefetch(this.settings.prefetchCount);
    await channel.assertExchange(topic, this.settings.exchangeKind, { durable: this.settings.durable, autoDelete: this.settings.deletedWhenUnused });
    const queueArguments: Record<string, unknown> = {};
    if (this.settings.enableDeadLetter) {
      const deadLetterExchange = `dlx-${queue}`;
      await channel.assertExchange(deadLetterExchange, 'fanout', { durable: this.settings.durable, autoDelete: this.settings.deletedWhenUnused });
      await channel.assertQueue(`dlq-${queue}`, { durable: this.settings.durable, autoDelete: this.settings.deletedWhenUnused });
      await channel.bindQueue(`dlq-${queue}`, deadLetterExchange, '');
      queueArguments['x-dead-letter-exchange'] = deadLetterExchange;
    }
    if (this.settings.maxLen !== undefined) queueArguments['x-max-length'] = this.settings.maxLen;
    if (this.settings.ttlSeconds !== undefined) queueArguments['x-message-ttl'] = this.settings.ttlSeconds * 1000;
    await channel.assertQueue(queue, { durable: this.settings.durable, autoDelete: this.settings.deletedWhenUnused, arguments: queueArguments });
    const routingKeys = (this.options.metadata['routingKey'] ?? '').split(',').map((key) => key.trim());
    for (const routingKey of routingKeys) await channel.bindQueue(queue, topic, routingKey);
    const requeue = this.settings.requeueInFailure && !this.settings.enableDeadLetter;
    const acks = new ChannelAcks(channel, this.settings.prefetchCount);
    this.acks = acks;
    const { consumerTag } = await channel.consume(queue, (delivery) => {
      if (delivery === null) return; // cancelled by the broker (queue deleted): the channel close restarts us
      acks.delivered(delivery);
      const settled = this.handle(channel, acks, delivery, requeue);
      this.inFlight.push(settled);
      void settled.finally(() => removeItem(this.inFlight, settled));
    }, { noAck: false, consumerTag: `${queue}-${randomUUID()}` });
    this.consumerTag = consumerTag;
    this.firstAttemptDone();
    if (this.closed) await this.stopConsuming();
    return lost;
  }

  private async handle(channel: Amqp.Channel, acks: ChannelAcks, delivery: Amqp.ConsumeMessage, requeue: boolean): Promise<void> {
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(delivery.properties.headers ?? {})) {
      if (typeof value === 'string') metadata[name] = value;
    }
    let verdict: 'ack' | 'nack' = 'nack';
    try {
      verdict = await this.handler({ brokerId: String(delivery.fields.deliveryTag), data: delivery.content, metadata });
    } catch (error) {
      this.logger.error({ topic: this.options.topic, err: (error as Error).message }, 'pubsub.rabbitmq: handler failed');
    }
    // A channel lost meanwhile has already returned the message to the queue; acking on a new one is impossible.
    if (channel !== this.channel) return;
    try {
      if (verdict === 'ack') acks.ack(delivery);
      else acks.nack(delivery, requeue);
    } catch (error) {
      this.logger.warn({ topic: this.options.topic, err: (error as Error).message }, 'pubsub.rabbitmq: settling a delivery failed; the broker redelivers it');
    }
  }

  private async stopConsuming(): Promise<void> {
    const channel = this.channel;
    if (channel === null || this.consumerTag === null) return;
    try {
      await channel.cancel(this.consumerTag);
    } catch {
      // The channel is already gone; its unacked messages went back to the queue.
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stopConsuming();
    await settledWithin(Promise.all(this.inFlight), CLOSE_DRAIN_MS);
    this.acks?.flush();
    const channel = this.channel;
    this.channel = null;
    this.wake?.();
    try {
      await channel?.close();
    } catch {
      // Already closed with its connection.
    }
    await this.running;
  }
}

export class RabbitMqBroker implements PubSubBroker {
  readonly capabilities: readonly string[] = [];
  private connecting: Promise<Amqp.ChannelModel> | null = null;
  private confirmChannel: Promise<Amqp.ConfirmChannel> | null = null;
  private readonly declaredExchanges = new Set<string>();
  /** Publishes the confirm channel has not confirmed yet, oldest first; a closing channel fails them all at once (an array: see removeItem). */
  private readonly awaitingConfirm: ((error: Error) => void)[] = [];
  private readonly subscriptions = new Set<RabbitSubscription>();
  private closed = false;
  private readonly turnWrites = new TurnWrites();

  constructor(
    private readonly settings: RabbitMqSettings,
    private readonly logger: FastifyBaseLogger,
  ) {}

  /** The live connection, made on first use and again after a loss. */
  connection(): Promise<Amqp.ChannelModel> {
    if (this.closed) return Promise.reject(new Error('the RabbitMQ broker is closed'));
    if (this.connecting !== null) return this.connecting;
    const attempt = amqplib()
      .connect(this.settings.url, { timeout: CONNECT_TIMEOUT_MS })
      .then((connection) => {
        connection.on('error', () => {});
        connection.once('close', () => {
          if (this.connecting === attempt) this.forget();
          if (!this.closed) this.logger.warn({ url: safeUrl(this.settings.url) }, 'pubsub.rabbitmq: connection lost');
        });
        return connection;
      });
    attempt.catch(() => {
      if (this.connecting === attempt) this.forget();
    });
    this.connecting = attempt;
    return attempt;
  }

  private forget(): void {
    this.connecting = null;
    this.confirmChannel = null;
    this.declaredExchanges.clear();
  }

  private publishChannel(): Promise<Amqp.ConfirmChannel> {
    if (this.confirmChannel !== null) return this.confirmChannel;
    const opening = this.connection().then(async (connection) => {
      const channel = await connection.createConfirmChannel();
      channel.on('error', () => {});
      channel.once('close', () => {
        if (this.confirmChannel === opening) {
          this.confirmChannel = null;
          this.declaredExchanges.clear();
        }
        const unconfirmed = this.awaitingConfirm.splice(0);
        for (const reject of unconfirmed) reject(new Error('the RabbitMQ channel closed before the broker confirmed the message'));
      });
      return channel;
    });
    opening.catch(() => {
      if (this.confirmChannel === opening) this.confirmChannel = null;
    });
    this.confirmChannel = opening;
    return opening;
  }

  async publish(topic: string, data: Buffer, metadata: Readonly<Record<string, string>>): Promise<void> {
    const channel = await this.publishChannel();
    if (!this.declaredExchanges.has(topic)) {
      await channel.assertExchange(topic, this.settings.exchangeKind, { durable: this.settings.durable, autoDelete: this.settings.deletedWhenUnused });
      this.declaredExchanges.add(topic);
    }
    const ttl = metadata['ttlInSeconds'];
    const headers: Record<string, string> = { ...metadata };
    // Confirms are pipelined: every publish in flight waits for its own ack, none for another's.
    await new Promise<void>((resolve, reject) => {
      this.awaitingConfirm.push(reject);
      channel.publish(
        topic,
        metadata['routingKey'] ?? '',
        data,
        {
          contentType: 'text/plain',
          persistent: this.settings.persistent,
          headers,
          ...(ttl !== undefined && /^\d+$/.test(ttl) ? { expiration: String(Number(ttl) * 1000) } : {}),
        },
        (error: unknown) => {
          removeItem(this.awaitingConfirm, reject);
          if (error) reject(error instanceof Error ? error : new Error('the RabbitMQ broker rejected the message'));
          else resolve();
        },
      );
      this.holdWritesForTheTurn(channel);
    });
  }

  private holdWritesForTheTurn(channel: Amqp.ConfirmChannel): void {
    // amqplib's Connection keeps its socket as `stream` (not in its typings).
    const socket = (channel.connection as unknown as { readonly stream?: Writable }).stream;
    if (socket !== undefined) this.turnWrites.hold(socket);
  }

  async subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<BrokerSubscription> {
    const subscription = new RabbitSubscription(this, this.settings, options, handler, this.logger);
    this.subscriptions.add(subscription);
    // A message published after subscribe() returns must find the queue bound (fanout exchanges drop
    // what no queue is bound to), so the first setup is waited for; a broker that is down does not hold it.
    await subscription.firstAttempt;
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
    this.closed = true;
    const connecting = this.connecting;
    this.forget();
    if (connecting !== null) {
      try {
        await (await connecting).close();
      } catch {
        // Never connected, or already closed.
      }
    }
  }
}
