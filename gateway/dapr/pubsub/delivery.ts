/**
 * Delivering one broker message to the local app, Dapr's way (`pkg/runtime/subscription`): build the
 * CloudEvent the app receives, pick the route, POST it as `application/cloudevents+json`, and read the
 * app's answer — 2xx SUCCESS (or no status) acks, 2xx DROP drops (to the dead-letter topic if any),
 * 2xx RETRY or another status retries, 404 drops with a warning, anything else (5xx, connection error,
 * timeout) retries. Retries are bounded, with exponential backoff on an injected timer; when they run
 * out the message goes to the dead-letter topic, or is handed back to the broker (`nack`) so it is
 * redelivered later — nothing is acked before the app said so.
 */
import type { FastifyBaseLogger } from 'fastify';
import { CLOUDEVENTS_CONTENT_TYPE, CloudEventError, eventForDelivery, SYSTEM_ENVELOPE_CLOCK } from './cloudevent.js';
import type { EnvelopeClock } from './cloudevent.js';
import type { BrokerMessage, HandlerVerdict, MessageHandler } from './broker.js';
import type { DeliveryRecord, DeliveryResult, HopTrace, MeshPlugin, SettledDelivery } from '../../pipeline/types.js';

export interface AppAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/** The local app's HTTP endpoint. Rejects on connection errors and on its own delivery timeout. */
export interface AppChannel {
  post(path: string, body: Buffer, headers: Readonly<Record<string, string>>): Promise<AppAnswer>;
}

export interface RetryTimer {
  sleep(ms: number): Promise<void>;
}

export const SYSTEM_RETRY_TIMER: RetryTimer = {
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface RetryPolicy {
  /** Deliveries tried before giving up on this round (the first one included). */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_DELIVERY_RETRY_POLICY: RetryPolicy = Object.freeze({ maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 5000 });

export function backoffMs(policy: RetryPolicy, failedAttempts: number): number {
  return Math.min(policy.initialBackoffMs * 2 ** (failedAttempts - 1), policy.maxBackoffMs);
}

export type AppVerdict = 'success' | 'retry' | 'drop';

export interface InterpretedAnswer {
  readonly verdict: AppVerdict;
  readonly reason: string;
}

/** Dapr's reading of the app's answer (dapr-api §1.4 "How the app's response is read"). */
export function interpretAppAnswer(answer: AppAnswer): InterpretedAnswer {
  if (answer.status === 404) return { verdict: 'drop', reason: 'the app answered 404 (no handler for the route)' };
  if (answer.status < 200 || answer.status > 299) return { verdict: 'retry', reason: `the app answered ${answer.status}` };
  if (answer.body.length === 0) return { verdict: 'success', reason: 'empty 2xx answer' };
  let status: unknown;
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as unknown;
    status = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>)['status'] : undefined;
  } catch {
    return { verdict: 'success', reason: '2xx answer that is not JSON' };
  }
  if (status === undefined || status === null || status === '') return { verdict: 'success', reason: '2xx answer without status' };
  const text = typeof status === 'string' ? status.toUpperCase() : '';
  if (text === 'SUCCESS') return { verdict: 'success', reason: 'SUCCESS' };
  if (text === 'DROP') return { verdict: 'drop', reason: 'the app answered DROP' };
  if (text === 'RETRY') return { verdict: 'retry', reason: 'the app answered RETRY' };
  return { verdict: 'retry', reason: `the app answered an unknown status ${JSON.stringify(status)}` };
}

/** A subscription as the delivery engine needs it, compiled once when subscriptions load. */
export interface DeliveryTarget {
  readonly pubsubName: string;
  readonly topic: string;
  readonly rawPayload: boolean;
  readonly deadLetterTopic: string | undefined;
  /** The app path for one event (rules, else default, else route). */
  route(envelope: Readonly<Record<string, unknown>>): string;
}

/** Where deliveries are reported: the delivery hooks of the observer plugins (metrics, access log, spans). */
export interface DeliveryObserver {
  started(delivery: DeliveryRecord): void;
  finished(delivery: SettledDelivery): void;
}

export const NO_DELIVERY_OBSERVER: DeliveryObserver = { started: () => undefined, finished: () => undefined };

/** The delivery hooks of `plugins`, each given its compiled state from `states` (one snapshot's). */
export function pluginDeliveryObserver(plugins: readonly MeshPlugin[], states: ReadonlyMap<string, unknown>): DeliveryObserver {
  const hooked = plugins.filter((plugin) => plugin.deliveries !== undefined);
  return {
    started(delivery) {
      for (const plugin of hooked) plugin.deliveries?.started?.(states.get(plugin.name), delivery);
    },
    finished(delivery) {
      for (const plugin of hooked) plugin.deliveries?.finished?.(states.get(plugin.name), delivery);
    },
  };
}

export interface DeliveryDependencies {
  readonly app: AppChannel;
  /** `host:port` of the app, for the records. */
  readonly appAddress: string;
  readonly policy: RetryPolicy;
  readonly timer: RetryTimer;
  readonly clock?: EnvelopeClock;
  /** Publishes to the dead-letter topic on the SAME pubsub. */
  readonly publishDeadLetter: (topic: string, data: Buffer, metadata: Readonly<Record<string, string>>) => Promise<void>;
  readonly logger: FastifyBaseLogger;
  /** The observer of the snapshot active now; a message is reported, start to end, to the one it was taken under. */
  readonly observer: () => DeliveryObserver;
}

class LiveDelivery implements DeliveryRecord {
  readonly startEpochMs = Date.now();
  readonly startMs = performance.now();
  endMs = Number.NaN;
  traceparent: string;
  trace: HopTrace | null = null;
  attempts = 0;
  status = 0;
  receivedBytes = 0;
  result: DeliveryResult | null = null;

  constructor(
    readonly pubsubName: string,
    readonly topic: string,
    readonly appAddress: string,
    readonly eventId: string,
    readonly path: string,
    readonly publisherTraceparent: string,
    readonly sentBytes: number,
  ) {
    this.traceparent = publisherTraceparent;
  }
}

/** Header names broker metadata may not set on the request to the app. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'connection', 'transfer-encoding']);

function deliveryHeaders(message: BrokerMessage, target: DeliveryTarget, traceparent: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.metadata)) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower) || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(lower) || /[\r\n]/.test(value)) continue;
    headers[lower] = value;
  }
  headers['content-type'] = CLOUDEVENTS_CONTENT_TYPE;
  headers['pubsubname'] = target.pubsubName;
  if (traceparent !== '') headers['traceparent'] = traceparent;
  return headers;
}

/** The broker handler for one subscription. */
export function deliveryHandler(target: DeliveryTarget, deps: DeliveryDependencies): MessageHandler {
  const clock = deps.clock ?? SYSTEM_ENVELOPE_CLOCK;
  const log = deps.logger.child({ pubsub: target.pubsubName, topic: target.topic });

  function settle(observer: DeliveryObserver, delivery: LiveDelivery, result: DeliveryResult): void {
    delivery.result = result;
    delivery.endMs = performance.now();
    observer.finished(delivery as SettledDelivery);
  }

  async function deadLetter(message: BrokerMessage, why: string): Promise<HandlerVerdict> {
    if (target.deadLetterTopic === undefined) return 'nack';
    try {
      await deps.publishDeadLetter(target.deadLetterTopic, message.data, message.metadata);
      log.warn({ deadLetterTopic: target.deadLetterTopic, reason: why }, 'pubsub: message sent to the dead-letter topic');
      return 'ack';
    } catch (error) {
      log.error({ deadLetterTopic: target.deadLetterTopic, err: (error as Error).message }, 'pubsub: publishing to the dead-letter topic failed; the broker keeps the message');
      return 'nack';
    }
  }

  return async (message) => {
    const observer = deps.observer();
    let event;
    try {
      event = eventForDelivery(message.data, { rawPayload: target.rawPayload, pubsubName: target.pubsubName, topic: target.topic }, clock);
    } catch (error) {
      if (!(error instanceof CloudEventError)) throw error;
      const delivery = new LiveDelivery(target.pubsubName, target.topic, deps.appAddress, '', '', '', 0);
      observer.started(delivery);
      // Retrying cannot make bad bytes good: dead-letter it, or drop it as Dapr does without one.
      log.warn({ brokerId: message.brokerId, err: error.message }, 'pubsub: message is not a CloudEvent');
      const verdict = target.deadLetterTopic === undefined ? 'ack' : await deadLetter(message, error.message);
      settle(observer, delivery, verdict === 'ack' && target.deadLetterTopic !== undefined ? 'dead-lettered' : verdict === 'ack' ? 'dropped' : 'returned-to-broker');
      return verdict;
    }
    const path = event.expired ? '' : target.route(event.envelope);
    const delivery = new LiveDelivery(target.pubsubName, target.topic, deps.appAddress, event.id, path, event.traceparent ?? '', event.body.length);
    observer.started(delivery);
    if (event.expired) {
      log.info({ eventId: event.id }, 'pubsub: dropping an expired event');
      settle(observer, delivery, 'expired');
      return 'ack';
    }
    if (path === '') {
      log.warn({ eventId: event.id }, 'pubsub: no routing rule matched and the subscription has no default route; dropping the event');
      settle(observer, delivery, 'dropped');
      return 'ack';
    }
    const headers = deliveryHeaders(message, target, delivery.traceparent);
    let lastReason = '';
    for (let attempt = 1; attempt <= deps.policy.maxAttempts; attempt++) {
      let interpreted: InterpretedAnswer;
      delivery.attempts = attempt;
      try {
        const answer = await deps.app.post(path, event.body, headers);
        delivery.status = answer.status;
        delivery.receivedBytes = answer.body.length;
        interpreted = interpretAppAnswer(answer);
      } catch (error) {
        delivery.status = 0;
        delivery.receivedBytes = 0;
        interpreted = { verdict: 'retry', reason: `delivery failed: ${(error as Error).message}` };
      }
      if (interpreted.verdict === 'success') {
        settle(observer, delivery, 'delivered');
        return 'ack';
      }
      if (interpreted.verdict === 'drop') {
        log.warn({ eventId: event.id, path, reason: interpreted.reason }, 'pubsub: the app dropped the event');
        const verdict = await deadLetter(message, interpreted.reason);
        const deadLettered = verdict === 'ack' && target.deadLetterTopic !== undefined;
        settle(observer, delivery, deadLettered ? 'dead-lettered' : 'dropped');
        // A drop without a dead-letter topic is final (Dapr acks it); only a failed dead-letter publish keeps it.
        return target.deadLetterTopic === undefined ? 'ack' : verdict;
      }
      lastReason = interpreted.reason;
      if (attempt < deps.policy.maxAttempts) await deps.timer.sleep(backoffMs(deps.policy, attempt));
    }
    log.warn({ eventId: event.id, path, attempts: deps.policy.maxAttempts, reason: lastReason }, 'pubsub: delivery retries exhausted');
    const verdict = await deadLetter(message, lastReason);
    settle(observer, delivery, verdict === 'ack' ? 'dead-lettered' : 'returned-to-broker');
    return verdict;
  };
}
