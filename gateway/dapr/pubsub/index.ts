/**
 * The pub/sub building block: compiles the sidecar's `pubsub.*` Components and declarative
 * Subscriptions once per snapshot (metadata problems become MG1302 with the field's position, routing
 * rules it cannot evaluate MG1320), hands the active snapshot to the runtime (brokers, subscriptions,
 * deliveries), and serves the publish API.
 */
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { makeDiagnostic } from '../../config/diagnostics.js';
import type { DiagnosticCode } from '../../config/diagnostics.js';
import type { DaprBuildingBlock, DaprCompileInput, DaprMetadataSubscription } from '../api/building-block.js';
import { MG_DAPR_BAD_METADATA } from '../components/registry.js';
import type { ResolvedComponent } from '../components/registry.js';
import { BrokerConfigError, metadataDurationMs, metadataInteger } from './broker.js';
import type { PubSubBroker } from './broker.js';
import { DEFAULT_DELIVERY_RETRY_POLICY } from './delivery.js';
import { InMemoryBroker } from './in-memory.js';
import { PUBSUB_BLOCK_NAME, registerPublishRoutes } from './publish-api.js';
import { RabbitMqBroker, rabbitMqSettings } from './rabbitmq.js';
import { RedisStreamsBroker, redisStreamsSettings } from './redis-streams.js';
import { compileRoutes, RoutingRuleError } from './routing.js';
import { PubSubRuntime } from './runtime.js';
import type { CompiledPubSub, CompiledPubSubComponent } from './runtime.js';
import { compileTopicScopes } from './scopes.js';
import { declarativeSpec } from './subscriptions.js';
import type { SubscriptionSpec } from './subscriptions.js';

export const MG_DAPR_UNSUPPORTED_ROUTE_MATCH = 'MG1320' satisfies DiagnosticCode;

const DEFAULT_DELIVERY_TIMEOUT_MS = 30_000;

const BROKER_FACTORIES: Readonly<Record<string, (metadata: Readonly<Record<string, string>>) => (logger: FastifyBaseLogger) => PubSubBroker>> = {
  'pubsub.redis': (metadata) => {
    const settings = redisStreamsSettings(metadata);
    return (logger) => new RedisStreamsBroker(settings, logger);
  },
  'pubsub.rabbitmq': (metadata) => {
    const settings = rabbitMqSettings(metadata);
    return (logger) => new RabbitMqBroker(settings, logger);
  },
  'pubsub.in-memory': (metadata) => {
    metadataDurationMs(metadata, 'redeliverInterval', 0);
    return (logger) => new InMemoryBroker(metadata, logger);
  },
};

/**
 * One runtime per app (`namespace/appId`): a process normally serves one sidecar, but tests and the
 * demo run several in one process, and each must keep its own brokers and subscriptions.
 */
const runtimes = new Map<string, PubSubRuntime>();
let apiLogger: FastifyBaseLogger | null = null;

function runtimeKey(compiled: CompiledPubSub): string {
  return `${compiled.namespace}/${compiled.appId}`;
}

function runtimeFor(compiled: CompiledPubSub): PubSubRuntime {
  const key = runtimeKey(compiled);
  let runtime = runtimes.get(key);
  if (runtime === undefined) {
    runtime = new PubSubRuntime();
    if (apiLogger !== null) runtime.setLogger(apiLogger.child({ app: key }));
    runtimes.set(key, runtime);
  }
  return runtime;
}

function brokerKey(component: ResolvedComponent): string {
  const sorted = Object.entries(component.metadata).sort(([a], [b]) => a.localeCompare(b));
  return `${component.namespace}/${component.name}/${component.type}/${createHash('sha256').update(JSON.stringify(sorted)).digest('hex')}`;
}

function compileComponent(component: ResolvedComponent, input: DaprCompileInput): CompiledPubSubComponent | null {
  const factory = BROKER_FACTORIES[component.type];
  if (factory === undefined) return null;
  try {
    const metadata = component.metadata;
    const createBroker = factory(metadata);
    return {
      name: component.name,
      type: component.type,
      brokerKey: brokerKey(component),
      scopes: compileTopicScopes(metadata, input.appId),
      consumerGroup: metadata['consumerID']?.trim() || input.appId,
      retryPolicy: {
        maxAttempts: metadataInteger(metadata, 'deliveryMaxAttempts', DEFAULT_DELIVERY_RETRY_POLICY.maxAttempts, 1),
        initialBackoffMs: metadataDurationMs(metadata, 'deliveryBackoff', DEFAULT_DELIVERY_RETRY_POLICY.initialBackoffMs),
        maxBackoffMs: metadataDurationMs(metadata, 'deliveryMaxBackoff', DEFAULT_DELIVERY_RETRY_POLICY.maxBackoffMs),
      },
      deliveryTimeoutMs: metadataDurationMs(metadata, 'deliveryTimeout', DEFAULT_DELIVERY_TIMEOUT_MS),
      createBroker,
    };
  } catch (error) {
    if (!(error instanceof BrokerConfigError)) throw error;
    input.diagnostics.push(makeDiagnostic(MG_DAPR_BAD_METADATA, `${component.type} ${component.name}: ${error.message}`, component.at(error.field), component.subject(error.field)));
    return null;
  }
}

function compileDeclarative(input: DaprCompileInput): SubscriptionSpec[] {
  const specs: SubscriptionSpec[] = [];
  for (const subscription of input.subscriptions) {
    const spec = declarativeSpec(subscription);
    try {
      compileRoutes(spec);
    } catch (error) {
      if (!(error instanceof RoutingRuleError)) throw error;
      const resource = input.resources.find((r) => r.kind === 'Subscription' && r.metadata.name === subscription.name && r.metadata.namespace === subscription.namespace);
      const index = spec.rules.findIndex((rule) => {
        try {
          compileRoutes({ rules: [rule], defaultPath: null });
          return false;
        } catch {
          return true;
        }
      });
      const path = ['spec', 'routes', 'rules', index, 'match'];
      input.diagnostics.push(
        makeDiagnostic(MG_DAPR_UNSUPPORTED_ROUTE_MATCH, error.message, resource?.at(path) ?? { file: '<unknown>', line: 0, col: 0 }, {
          kind: 'Subscription',
          namespace: subscription.namespace,
          name: subscription.name,
          field: `spec.routes.rules[${index}].match`,
        }),
      );
      continue;
    }
    specs.push(spec);
  }
  return specs;
}

function metadataEntry(spec: SubscriptionSpec): DaprMetadataSubscription {
  const rules = [...spec.rules, ...(spec.defaultPath === null ? [] : [{ match: '', path: spec.defaultPath }])];
  return {
    pubsubname: spec.pubsubname,
    topic: spec.topic,
    ...(Object.keys(spec.metadata).length > 0 ? { metadata: spec.metadata } : {}),
    rules,
    ...(spec.deadLetterTopic === null ? {} : { deadLetterTopic: spec.deadLetterTopic }),
    type: spec.type,
  };
}

export const pubsubBlock: DaprBuildingBlock<CompiledPubSub> = {
  name: PUBSUB_BLOCK_NAME,
  componentTypes: Object.keys(BROKER_FACTORIES),
  capabilities: () => [],
  compile(input) {
    const components = new Map<string, CompiledPubSubComponent>();
    for (const component of input.components.all) {
      const compiled = compileComponent(component, input);
      if (compiled !== null) components.set(compiled.name, compiled);
    }
    const token = process.env['APP_API_TOKEN'];
    return {
      appId: input.appId,
      namespace: input.namespace,
      app: input.appEndpoint,
      appApiToken: token === undefined || token === '' ? null : token,
      components,
      declarative: compileDeclarative(input),
    };
  },
  activated(compiled, activation) {
    runtimeFor(compiled).activate(compiled, activation.deliveries);
  },
  async shutdown(compiled) {
    const key = runtimeKey(compiled);
    const stopping = runtimes.get(key);
    runtimes.delete(key);
    await stopping?.shutdown();
  },
  register(app, host) {
    apiLogger ??= app.log.child({ block: PUBSUB_BLOCK_NAME });
    registerPublishRoutes(app, runtimeFor, host.events);
  },
  metadata(compiled) {
    return { subscriptions: runtimeFor(compiled).programmaticSubscriptions().map(metadataEntry) };
  },
};
