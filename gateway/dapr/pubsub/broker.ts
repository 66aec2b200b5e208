/**
 * The contract every pub/sub broker implements (`pubsub.redis`, `pubsub.rabbitmq`, `pubsub.in-memory`),
 * and the component-metadata readers they share. A broker only moves bytes: envelopes, routing to the
 * app, retries and dead letters live in the delivery engine, which answers each message with `ack` (the
 * app took it, dropped it, or it went to a dead-letter topic) or `nack` (keep it; the broker redelivers
 * it later). A broker never acks a message before its handler said `ack`.
 */
import { parseDuration } from '../../config/duration.js';

export interface BrokerMessage {
  /** The broker's id for the message (stream entry id, delivery tag, sequence), for logs. */
  readonly brokerId: string;
  readonly data: Buffer;
  /** Publish metadata that travelled with the message; reaches the app as headers. */
  readonly metadata: Readonly<Record<string, string>>;
}

export type HandlerVerdict = 'ack' | 'nack';
export type MessageHandler = (message: BrokerMessage) => Promise<HandlerVerdict>;

export interface SubscribeOptions {
  readonly topic: string;
  /** The consumer group: replicas of one app share the messages, other apps get their own copy. */
  readonly consumerGroup: string;
  /** The subscription's metadata (e.g. `queueName`, `routingKey` for RabbitMQ). */
  readonly metadata: Readonly<Record<string, string>>;
}

export interface BrokerSubscription {
  /**
   * Stops taking new messages; resolves once the messages being handled are settled or after
   * CLOSE_DRAIN_MS, whichever comes first (an unsettled message stays with the broker and is redelivered).
   */
  close(): Promise<void>;
}

/** How long closing a subscription waits for the app to answer the messages it is handling. */
export const CLOSE_DRAIN_MS = 5000;

/**
 * Takes `item` out of `items`. The messages and publishes a broker has in hand are kept in arrays like
 * this, not in Sets or Maps: an entry comes and goes with every message, and a long-lived Set or Map that
 * churns like that gets its table reallocated in V8's old generation, garbage that only a full collection
 * frees (~100 bytes a message; bench/README.md#where-a-messages-cpu-goes-dapr-pubsub). They hold at most
 * a prefetch or concurrency window, and the item sought is mostly near the front.
 */
export function removeItem<T>(items: T[], item: T): void {
  const index = items.indexOf(item);
  if (index !== -1) items.splice(index, 1);
}

/** Resolves when `work` settles or after `ms`, whichever is first. */
export function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void work.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export interface PubSubBroker {
  /** Dapr capability strings shown by `/v1.0/metadata`. */
  readonly capabilities: readonly string[];
  /** Resolves once the broker has accepted the message durably enough to answer 204; rejects fast on an outage. */
  publish(topic: string, data: Buffer, metadata: Readonly<Record<string, string>>): Promise<void>;
  subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<BrokerSubscription>;
  close(): Promise<void>;
}

/** A component whose metadata cannot make a broker; `field` is the metadata field at fault. */
export class BrokerConfigError extends Error {
  override readonly name = 'BrokerConfigError';

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`metadata ${field}: ${message}`);
  }
}

/** Dapr's duration metadata: Go durations (`"60s"`) or a bare number of milliseconds. */
export function metadataDurationMs(metadata: Readonly<Record<string, string>>, field: string, fallbackMs: number): number {
  const text = metadata[field]?.trim();
  if (text === undefined || text === '') return fallbackMs;
  if (/^\d+$/.test(text)) return Number(text);
  try {
    return parseDuration(text);
  } catch (error) {
    throw new BrokerConfigError(field, (error as Error).message);
  }
}

export function metadataInteger(metadata: Readonly<Record<string, string>>, field: string, fallback: number, minimum = 0): number {
  const text = metadata[field]?.trim();
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum) {
    throw new BrokerConfigError(field, `expected an integer ≥ ${minimum}, got ${JSON.stringify(text)}`);
  }
  return value;
}

export function metadataBoolean(metadata: Readonly<Record<string, string>>, field: string, fallback: boolean): boolean {
  const text = metadata[field]?.trim().toLowerCase();
  if (text === undefined || text === '') return fallback;
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new BrokerConfigError(field, `expected true or false, got ${JSON.stringify(text)}`);
}
