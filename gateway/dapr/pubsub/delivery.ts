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

export type DeliveryResult = 'delivered' | 'dropped' | 'dead-lettered' | 'expired' | 'returned-to-broker';

export interface DeliveryReport {
  readonly pubsubName: string;
  readonly topic: string;
  readonly eventId: string;
  readonly path: string;
  readonly result: DeliveryResult;
  readonly attempts: number;
  readonly durationMs: number;
  readonly traceparent: string | undefined;
}

export interface DeliveryDependencies {
  readonly app: AppChannel;
  readonly policy: RetryPolicy;
  readonly timer: RetryTimer;
  readonly clock?: EnvelopeClock;
  /** Publishes to the dead-letter topic on the SAME pubsub. */
  readonly publishDeadLetter: (topic: string, data: Buffer, metadata: Readonly<Record<string, string>>) => Promise<void>;
  readonly logger: FastifyBaseLogger;
  /** Called once per message with its outcome: metrics, spans, access log. */
  readonly onDelivered?: (report: DeliveryReport) => void;
}

/** Header names broker metadata may not set on the request to the app. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'connection', 'transfer-encoding']);

function deliveryHeaders(message: BrokerMessage, target: DeliveryTarget, traceparent: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.metadata)) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower) || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(lower) || /[\r\n]/.test(value)) continue;
    headers[lower] = value;
  }
  headers['content-type'] = CLOUDEVENTS_CONTENT_TYPE;
  headers['pubsubname'] = target.pubsubName;
  if (traceparent !== undefined) headers['traceparent'] = traceparent;
  return headers;
}

/** The broker handler for one subscription. */
export function deliveryHandler(target: DeliveryTarget, deps: DeliveryDependencies): MessageHandler {
  const clock = deps.clock ?? SYSTEM_ENVELOPE_CLOCK;
  const log = deps.logger.child({ pubsub: target.pubsubName, topic: target.topic });

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
    const started = performance.now();
    const report = (eventId: string, path: string, result: DeliveryResult, attempts: number, traceparent: string | undefined): void =>
      deps.onDelivered?.({ pubsubName: target.pubsubName, topic: target.topic, eventId, path, result, attempts, durationMs: performance.now() - started, traceparent });

    let event;
    try {
      event = eventForDelivery(message.data, { rawPayload: target.rawPayload, pubsubName: target.pubsubName, topic: target.topic }, clock);
    } catch (error) {
      if (!(error instanceof CloudEventError)) throw error;
      // Retrying cannot make bad bytes good: dead-letter it, or drop it as Dapr does without one.
      log.warn({ brokerId: message.brokerId, err: error.message }, 'pubsub: message is not a CloudEvent');
      const verdict = target.deadLetterTopic === undefined ? 'ack' : await deadLetter(message, error.message);
      report('', '', verdict === 'ack' && target.deadLetterTopic !== undefined ? 'dead-lettered' : verdict === 'ack' ? 'dropped' : 'returned-to-broker', 0, undefined);
      return verdict;
    }
    if (event.expired) {
      log.info({ eventId: event.id }, 'pubsub: dropping an expired event');
      report(event.id, '', 'expired', 0, event.traceparent);
      return 'ack';
    }
    const path = target.route(event.envelope);
    if (path === '') {
      log.warn({ eventId: event.id }, 'pubsub: no routing rule matched and the subscription has no default route; dropping the event');
      report(event.id, path, 'dropped', 0, event.traceparent);
      return 'ack';
    }
    const headers = deliveryHeaders(message, target, event.traceparent);
    let lastReason = '';
    for (let attempt = 1; attempt <= deps.policy.maxAttempts; attempt++) {
      let interpreted: InterpretedAnswer;
      try {
        interpreted = interpretAppAnswer(await deps.app.post(path, event.body, headers));
      } catch (error) {
        interpreted = { verdict: 'retry', reason: `delivery failed: ${(error as Error).message}` };
      }
      if (interpreted.verdict === 'success') {
        report(event.id, path, 'delivered', attempt, event.traceparent);
        return 'ack';
      }
      if (interpreted.verdict === 'drop') {
        log.warn({ eventId: event.id, path, reason: interpreted.reason }, 'pubsub: the app dropped the event');
        const verdict = await deadLetter(message, interpreted.reason);
        const deadLettered = verdict === 'ack' && target.deadLetterTopic !== undefined;
        report(event.id, path, deadLettered ? 'dead-lettered' : 'dropped', attempt, event.traceparent);
        // A drop without a dead-letter topic is final (Dapr acks it); only a failed dead-letter publish keeps it.
        return target.deadLetterTopic === undefined ? 'ack' : verdict;
      }
      lastReason = interpreted.reason;
      if (attempt < deps.policy.maxAttempts) await deps.timer.sleep(backoffMs(deps.policy, attempt));
    }
    log.warn({ eventId: event.id, path, attempts: deps.policy.maxAttempts, reason: lastReason }, 'pubsub: delivery retries exhausted');
    const verdict = await deadLetter(message, lastReason);
    report(event.id, path, verdict === 'ack' ? 'dead-lettered' : 'returned-to-broker', deps.policy.maxAttempts, event.traceparent);
    return verdict;
  };
}
