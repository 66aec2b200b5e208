/**
 * `dapr.io` Subscription, declarative pub/sub subscriptions. Two API versions with different shapes:
 * v1alpha1 has one `route`; v2alpha1 has `routes` (CEL `match` rules and a `default`). `scopes` sits
 * at the top level of the document, beside `spec`. `normalizeSubscription` gives both one shape.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { Resource } from '../resource.js';
import { strictObject, stringMap } from './common.js';
import { DaprScopes } from './dapr-component.js';

const BulkSubscribe = strictObject(
  {
    enabled: Type.Boolean({ description: 'Deliver messages to the app in batches.' }),
    maxMessagesCount: Type.Optional(Type.Integer({ minimum: 1, description: 'Largest batch (Dapr default 100).' })),
    maxAwaitDurationMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Longest wait to fill a batch, in ms (Dapr default 1000).' })),
  },
  'Bulk delivery settings.',
);

const common = {
  pubsubname: Type.String({ minLength: 1, description: 'Name of the pub/sub Component.' }),
  topic: Type.String({ minLength: 1, description: 'Topic to subscribe to.' }),
  metadata: Type.Optional(stringMap('Subscription metadata (e.g. `rawPayload: "true"`, `queueName`, `routingKey`).')),
  deadLetterTopic: Type.Optional(Type.String({ minLength: 1, description: 'Topic that receives messages the app dropped or that ran out of retries.' })),
  bulkSubscribe: Type.Optional(BulkSubscribe),
};

export const DaprSubscriptionV1Spec = strictObject(
  { ...common, route: Type.String({ minLength: 1, description: 'Path on the app that receives the events, e.g. `/orders`.' }) },
  'Dapr Subscription (v1alpha1): every event of the topic goes to one route.',
);
export type DaprSubscriptionV1Spec = Static<typeof DaprSubscriptionV1Spec>;

const RoutingRule = strictObject(
  {
    match: Type.String({ description: 'CEL expression over `event.*`; empty matches every event.' }),
    path: Type.String({ minLength: 1, description: 'Path on the app for events this rule matches.' }),
  },
  'One routing rule; the first matching rule wins.',
);

export const DaprSubscriptionV2Spec = strictObject(
  {
    ...common,
    routes: strictObject(
      {
        rules: Type.Optional(Type.Array(RoutingRule, { description: 'Rules tried in order.' })),
        default: Type.Optional(Type.String({ minLength: 1, description: 'Path for events no rule matched.' })),
      },
      'Where events go on the app.',
    ),
  },
  'Dapr Subscription (v2alpha1): events routed by rules.',
);
export type DaprSubscriptionV2Spec = Static<typeof DaprSubscriptionV2Spec>;

export const DAPR_SUBSCRIPTION_TOP_LEVEL = strictObject({ scopes: Type.Optional(DaprScopes) }, 'Top-level fields of a Dapr Subscription beside spec.');
export type DaprSubscriptionTopLevel = Static<typeof DAPR_SUBSCRIPTION_TOP_LEVEL>;

/** A declarative subscription in one shape whatever its API version. */
export interface DaprSubscription {
  readonly name: string;
  readonly namespace: string;
  readonly pubsubname: string;
  readonly topic: string;
  /** v2alpha1 rules in order; v1alpha1 has none. */
  readonly rules: readonly { readonly match: string; readonly path: string }[];
  /** v1alpha1 `route`, or v2alpha1 `routes.default`; null when only rules route. */
  readonly defaultPath: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly deadLetterTopic: string | null;
  readonly bulkSubscribe: Static<typeof BulkSubscribe> | null;
  readonly scopes: readonly string[];
}

export function normalizeSubscription(resource: Resource): DaprSubscription {
  const spec = resource.spec as DaprSubscriptionV1Spec | DaprSubscriptionV2Spec;
  const topLevel = (resource.topLevel ?? {}) as DaprSubscriptionTopLevel;
  const routed = 'routes' in spec ? { rules: spec.routes.rules ?? [], defaultPath: spec.routes.default ?? null } : { rules: [], defaultPath: spec.route };
  return {
    name: resource.metadata.name,
    namespace: resource.metadata.namespace,
    pubsubname: spec.pubsubname,
    topic: spec.topic,
    ...routed,
    metadata: spec.metadata ?? {},
    deadLetterTopic: spec.deadLetterTopic ?? null,
    bulkSubscribe: spec.bulkSubscribe ?? null,
    scopes: topLevel.scopes ?? [],
  };
}
