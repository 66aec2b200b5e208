/**
 * The long-lived side of pub/sub, outliving snapshots: brokers (one per distinct component
 * definition, kept across reloads that do not change it), the app channel, and the running
 * subscriptions, reconciled each time a snapshot becomes active. Programmatic subscriptions are asked
 * from the app once per app endpoint, in the background, so a sidecar is ready (and serves invoke and
 * publish) while its app is still starting.
 */
import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { HttpAppChannel } from './app-channel.js';
import type { AppEndpoint } from './app-channel.js';
import type { BrokerSubscription, PubSubBroker } from './broker.js';
import { deliveryHandler, NO_DELIVERY_OBSERVER, SYSTEM_RETRY_TIMER } from './delivery.js';
import type { DeliveryObserver, RetryPolicy } from './delivery.js';
import { compileRoutes } from './routing.js';
import type { TopicScopes } from './scopes.js';
import { fetchProgrammaticSubscriptions } from './subscriptions.js';
import type { SubscriptionSpec } from './subscriptions.js';

export interface CompiledPubSubComponent {
  readonly name: string;
  readonly type: string;
  /** Equal keys mean the same broker: a reload that keeps the component keeps its connections. */
  readonly brokerKey: string;
  readonly scopes: TopicScopes;
  /** `consumerID` metadata, else the app id. */
  readonly consumerGroup: string;
  readonly retryPolicy: RetryPolicy;
  readonly deliveryTimeoutMs: number;
  createBroker(logger: FastifyBaseLogger): PubSubBroker;
}

export interface CompiledPubSub {
  readonly appId: string;
  readonly namespace: string;
  readonly app: AppEndpoint | null;
  readonly appApiToken: string | null;
  readonly components: ReadonlyMap<string, CompiledPubSubComponent>;
  readonly declarative: readonly SubscriptionSpec[];
}

interface RunningSubscription {
  readonly spec: SubscriptionSpec;
  readonly subscription: BrokerSubscription;
}

interface ProgrammaticState {
  readonly endpointKey: string;
  specs: SubscriptionSpec[] | null;
  stopped: boolean;
}

function endpointKey(endpoint: AppEndpoint | null): string {
  return endpoint === null ? '' : `${endpoint.host}:${endpoint.port}`;
}

export class PubSubRuntime {
  private logger: FastifyBaseLogger = pino({ name: 'pubsub' });
  private readonly brokers = new Map<string, PubSubBroker>();
  private readonly running = new Map<string, RunningSubscription>();
  private readonly channels = new Map<string, HttpAppChannel>();
  private programmatic: ProgrammaticState | null = null;
  private active: CompiledPubSub | null = null;
  /** The active snapshot's delivery observer. */
  private observer: DeliveryObserver = NO_DELIVERY_OBSERVER;
  private readonly currentObserver = (): DeliveryObserver => this.observer;
  private reconciling: Promise<void> = Promise.resolve();
  private closed = false;

  setLogger(logger: FastifyBaseLogger): void {
    this.logger = logger;
  }

  /** The broker of a component of the active (or a just-replaced) snapshot, created on first use. */
  broker(component: CompiledPubSubComponent): PubSubBroker {
    let broker = this.brokers.get(component.brokerKey);
    if (broker === undefined) {
      broker = component.createBroker(this.logger.child({ pubsub: component.name, type: component.type }));
      this.brokers.set(component.brokerKey, broker);
    }
    return broker;
  }

  /** Subscriptions the app asked for, for `/v1.0/metadata`. */
  programmaticSubscriptions(): readonly SubscriptionSpec[] {
    return this.programmatic?.specs ?? [];
  }

  activate(compiled: CompiledPubSub, observer: DeliveryObserver): void {
    if (this.closed) return;
    this.active = compiled;
    this.observer = observer;
    // Without a pub/sub component the app has nothing to subscribe to: it is never asked.
    const app = compiled.components.size === 0 ? null : compiled.app;
    const key = endpointKey(app);
    if (this.programmatic?.endpointKey !== key) {
      if (this.programmatic !== null) this.programmatic.stopped = true;
      const state: ProgrammaticState = { endpointKey: key, specs: app === null ? [] : null, stopped: false };
      this.programmatic = state;
      if (app !== null) {
        const channel = this.channel(app, compiled.components.values().next().value?.deliveryTimeoutMs ?? 30_000, compiled.appApiToken);
        void fetchProgrammaticSubscriptions(channel, { timer: SYSTEM_RETRY_TIMER, stopped: () => state.stopped || this.closed, logger: this.logger }).then((specs) => {
          if (specs === null || state.stopped) return;
          state.specs = specs;
          this.logger.info({ subscriptions: specs.map((spec) => `${spec.pubsubname}/${spec.topic}`) }, 'pubsub: programmatic subscriptions loaded');
          this.scheduleReconcile();
        });
      }
    }
    this.scheduleReconcile();
  }

  private channel(endpoint: AppEndpoint, timeoutMs: number, appApiToken: string | null): HttpAppChannel {
    const key = `${endpointKey(endpoint)}\n${timeoutMs}\n${appApiToken ?? ''}`;
    let channel = this.channels.get(key);
    if (channel === undefined) {
      channel = new HttpAppChannel(endpoint, timeoutMs, appApiToken);
      this.channels.set(key, channel);
    }
    return channel;
  }

  private scheduleReconcile(): void {
    this.reconciling = this.reconciling.then(() => this.reconcile()).catch((error: unknown) => {
      this.logger.error({ err: (error as Error).message }, 'pubsub: applying subscriptions failed');
    });
  }

  private subscriptionKey(spec: SubscriptionSpec, component: CompiledPubSubComponent, compiled: CompiledPubSub): string {
    return JSON.stringify([spec, component.brokerKey, component.consumerGroup, component.retryPolicy, component.deliveryTimeoutMs, endpointKey(compiled.app), compiled.appApiToken]);
  }

  /** The subscriptions the active snapshot wants, by key; invalid or forbidden ones are logged and left out. */
  private desired(compiled: CompiledPubSub): Map<string, { spec: SubscriptionSpec; component: CompiledPubSubComponent }> {
    const wanted = new Map<string, { spec: SubscriptionSpec; component: CompiledPubSubComponent }>();
    if (compiled.app === null) return wanted;
    for (const spec of [...compiled.declarative, ...(this.programmatic?.specs ?? [])]) {
      const component = compiled.components.get(spec.pubsubname);
      const where = { pubsub: spec.pubsubname, topic: spec.topic, type: spec.type };
      if (component === undefined) {
        this.logger.warn(where, 'pubsub: subscription to an unknown pub/sub component ignored');
        continue;
      }
      if (!component.scopes.maySubscribe(spec.topic)) {
        this.logger.warn(where, 'pubsub: subscription refused by the component\'s subscriptionScopes/allowedTopics/protectedTopics');
        continue;
      }
      wanted.set(this.subscriptionKey(spec, component, compiled), { spec, component });
    }
    return wanted;
  }

  private async reconcile(): Promise<void> {
    const compiled = this.active;
    if (compiled === null || this.closed) return;
    const wanted = this.desired(compiled);
    const stale = [...this.running.entries()].filter(([key]) => !wanted.has(key));
    for (const [key] of stale) this.running.delete(key);
    await Promise.all(stale.map(([, running]) => running.subscription.close()));
    for (const [key, { spec, component }] of wanted) {
      if (this.running.has(key) || compiled.app === null) continue;
      let route;
      try {
        route = compileRoutes(spec);
      } catch (error) {
        this.logger.warn({ pubsub: spec.pubsubname, topic: spec.topic, err: (error as Error).message }, 'pubsub: subscription skipped');
        continue;
      }
      if (route === null) continue;
      const broker = this.broker(component);
      const handler = deliveryHandler(
        {
          pubsubName: spec.pubsubname,
          topic: spec.topic,
          rawPayload: /^"?true"?$/i.test(spec.metadata['rawPayload']?.trim() ?? ''),
          deadLetterTopic: spec.deadLetterTopic ?? undefined,
          route,
        },
        {
          app: this.channel(compiled.app, component.deliveryTimeoutMs, compiled.appApiToken),
          appAddress: endpointKey(compiled.app),
          policy: component.retryPolicy,
          timer: SYSTEM_RETRY_TIMER,
          publishDeadLetter: (topic, data, metadata) => broker.publish(topic, data, metadata),
          logger: this.logger,
          observer: this.currentObserver,
        },
      );
      const subscription = await broker.subscribe({ topic: spec.topic, consumerGroup: component.consumerGroup, metadata: spec.metadata }, handler);
      this.running.set(key, { spec, subscription });
      this.logger.info({ pubsub: spec.pubsubname, topic: spec.topic, type: spec.type, group: component.consumerGroup }, 'pubsub: subscribed');
    }
    await this.closeUnusedBrokers(compiled);
  }

  private async closeUnusedBrokers(compiled: CompiledPubSub): Promise<void> {
    const used = new Set([...compiled.components.values()].map((component) => component.brokerKey));
    const unused = [...this.brokers.entries()].filter(([key]) => !used.has(key));
    for (const [key] of unused) this.brokers.delete(key);
    await Promise.all(unused.map(([, broker]) => broker.close()));
  }

  async shutdown(): Promise<void> {
    this.closed = true;
    if (this.programmatic !== null) this.programmatic.stopped = true;
    await this.reconciling;
    const running = [...this.running.values()];
    this.running.clear();
    await Promise.all(running.map(({ subscription }) => subscription.close()));
    const brokers = [...this.brokers.values()];
    this.brokers.clear();
    await Promise.all(brokers.map((broker) => broker.close()));
    const channels = [...this.channels.values()];
    this.channels.clear();
    await Promise.all(channels.map((channel) => channel.close()));
  }
}
