/**
 * Subscriptions in one shape, from either source: declarative (Subscription resources, compiled with
 * the snapshot) and programmatic (the app's answer to `GET /dapr/subscribe`, asked with backoff until
 * the app answers — the app may start after its sidecar). Dapr's quirks are accepted: metadata values
 * JSON-stringified by the JS SDK (`"\"true\""`), 404 meaning "no subscriptions", entries without any
 * route dropped.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { DaprSubscription } from '../../config/kinds/dapr-subscription.js';
import type { AppAnswer } from './delivery.js';
import type { RetryTimer } from './delivery.js';

/** What delivery needs of a subscription, declarative (a Subscription resource) or programmatic (the app's `/dapr/subscribe`). */
export type SubscriptionSpec = Pick<DaprSubscription, 'pubsubname' | 'topic' | 'rules' | 'defaultPath' | 'metadata' | 'deadLetterTopic'> & {
  readonly type: 'PROGRAMMATIC' | 'DECLARATIVE';
};

export function declarativeSpec(subscription: DaprSubscription): SubscriptionSpec {
  return {
    pubsubname: subscription.pubsubname,
    topic: subscription.topic,
    rules: subscription.rules,
    defaultPath: subscription.defaultPath,
    metadata: subscription.metadata,
    deadLetterTopic: subscription.deadLetterTopic,
    type: 'DECLARATIVE',
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function nonEmptyString(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function stringMetadata(value: unknown): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (!isRecord(value)) return metadata;
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry === 'string') metadata[key] = entry;
    else if (typeof entry === 'number' || typeof entry === 'boolean') metadata[key] = String(entry);
  }
  return metadata;
}

export interface ParsedSubscriptions {
  readonly subscriptions: SubscriptionSpec[];
  /** Entries skipped, with why: logged, never fatal. */
  readonly problems: string[];
}

/** The body of `GET /dapr/subscribe`: a JSON array of Dapr subscription objects. */
export function parseProgrammaticSubscriptions(body: Buffer): ParsedSubscriptions {
  const problems: string[] = [];
  let parsed: unknown;
  try {
    parsed = body.length === 0 ? [] : (JSON.parse(body.toString('utf8')) as unknown);
  } catch (error) {
    return { subscriptions: [], problems: [`the answer is not JSON: ${(error as Error).message}`] };
  }
  if (!Array.isArray(parsed)) return { subscriptions: [], problems: ['the answer is not a JSON array'] };
  const subscriptions: SubscriptionSpec[] = [];
  parsed.forEach((entry: unknown, index) => {
    if (!isRecord(entry)) return problems.push(`entry ${index} is not an object`);
    const pubsubname = nonEmptyString(entry['pubsubname']);
    const topic = nonEmptyString(entry['topic']);
    if (pubsubname === null || topic === null) return problems.push(`entry ${index} lacks pubsubname or topic`);
    const routes = isRecord(entry['routes']) ? entry['routes'] : {};
    const rules = (Array.isArray(routes['rules']) ? routes['rules'] : [])
      .filter(isRecord)
      .map((rule) => ({ match: typeof rule['match'] === 'string' ? rule['match'] : '', path: nonEmptyString(rule['path']) ?? '' }))
      .filter((rule) => rule.path !== '');
    const defaultPath = nonEmptyString(routes['default']) ?? nonEmptyString(entry['route']);
    if (rules.length === 0 && defaultPath === null) return problems.push(`entry ${index} (${pubsubname}/${topic}) has no route`);
    subscriptions.push({
      pubsubname,
      topic,
      rules,
      defaultPath,
      metadata: stringMetadata(entry['metadata']),
      deadLetterTopic: nonEmptyString(entry['deadLetterTopic']),
      type: 'PROGRAMMATIC',
    });
    return undefined;
  });
  return { subscriptions, problems };
}

export interface SubscribeEndpoint {
  get(path: string): Promise<AppAnswer>;
}

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;

/**
 * Asks the app for its subscriptions until it answers (any HTTP answer ends the loop: 200 parsed,
 * 404 or other statuses mean none). Resolves null when `stopped()` turns true first.
 */
export async function fetchProgrammaticSubscriptions(
  app: SubscribeEndpoint,
  options: { readonly timer: RetryTimer; readonly stopped: () => boolean; readonly logger: FastifyBaseLogger },
): Promise<SubscriptionSpec[] | null> {
  for (let attempt = 1; !options.stopped(); attempt++) {
    let answer: AppAnswer;
    try {
      answer = await app.get('/dapr/subscribe');
    } catch (error) {
      if (options.stopped()) break;
      if (attempt === 1 || attempt % 50 === 0) {
        options.logger.info({ attempt, err: (error as Error).message }, 'pubsub: the app does not answer GET /dapr/subscribe yet; retrying');
      }
      await options.timer.sleep(Math.min(FIRST_BACKOFF_MS * 2 ** Math.min(attempt - 1, 10), MAX_BACKOFF_MS));
      continue;
    }
    if (answer.status === 404) return [];
    if (answer.status < 200 || answer.status > 299) {
      options.logger.warn({ status: answer.status }, 'pubsub: GET /dapr/subscribe failed; no programmatic subscriptions');
      return [];
    }
    const { subscriptions, problems } = parseProgrammaticSubscriptions(answer.body);
    for (const problem of problems) options.logger.warn({ problem }, 'pubsub: skipped a programmatic subscription');
    return subscriptions;
  }
  return null;
}
