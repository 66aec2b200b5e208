/**
 * The contract of a Dapr building block (state, pub/sub, metadata, health, …) on the sidecar's
 * outbound listener, mirroring MeshPlugin: `compile` once per snapshot (pure: no sockets), `activated`
 * when that snapshot starts serving (open or reuse connections), `shutdown` at exit, and `register`
 * adds its routes to the outbound listener's fastify app, after the pipeline's hooks, so every Dapr
 * call gets the same metrics, access log, span and authorization as proxied traffic. Handlers read
 * their compiled state from the snapshot pinned on the request (`compiledBlock`).
 */
import type { FastifyInstance } from 'fastify';
import type { DaprSubscription } from '../../config/kinds/dapr-subscription.js';
import type { Diagnostic, Resource } from '../../config/resource.js';
import type { ProxyEvents } from '../../pipeline/capabilities.js';
import type { ComponentRegistry, ResolvedComponent } from '../components/registry.js';
import type { DeliveryObserver } from '../pubsub/delivery.js';

export interface DaprCompileInput {
  readonly appId: string;
  readonly namespace: string;
  /** The Components this sidecar loads (its namespace, scopes that allow its app id), secrets resolved. */
  readonly components: ComponentRegistry;
  /** Declarative Subscriptions of its namespace whose scopes allow its app id. */
  readonly subscriptions: readonly DaprSubscription[];
  readonly resources: readonly Resource[];
  /** The local app (the Sidecar's `ingress[0].defaultEndpoint`), for calls into it; null without an inbound listener. */
  readonly appEndpoint: { readonly host: string; readonly port: number } | null;
  /** Push problems of the block's components here (positions via `component.at(field)`); an error rejects the snapshot. */
  readonly diagnostics: Diagnostic[];
}

/** One entry of `subscriptions` in `GET /v1.0/metadata`, as Dapr writes it. */
export interface DaprMetadataSubscription {
  readonly pubsubname: string;
  readonly topic: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly rules: readonly { readonly match: string; readonly path: string }[];
  readonly deadLetterTopic?: string;
  readonly type: 'PROGRAMMATIC' | 'DECLARATIVE' | 'STREAMING';
}

/**
 * What a block adds to `GET /v1.0/metadata`. The metadata block already lists the declarative
 * Subscriptions of the snapshot; a pub/sub block contributes only the ones it learnt at run time
 * (programmatic, streaming).
 */
export interface DaprMetadataContribution {
  readonly subscriptions?: readonly DaprMetadataSubscription[];
  readonly extended?: Readonly<Record<string, string>>;
}

/** What a snapshot that becomes active brings besides the blocks' compiled state. */
export interface DaprActivation {
  /** Reports the messages the sidecar delivers to its app to the observer plugins, with this snapshot's state. */
  readonly deliveries: DeliveryObserver;
}

/** What the running sidecar offers the blocks' routes beyond the request's snapshot. */
export interface DaprApiHost {
  /** Drain and stop the sidecar (`POST /v1.0/shutdown`), as SIGTERM does. */
  requestShutdown(): void;
  /** The plugins' proxy event hooks (publishes are counted there). */
  readonly events: ProxyEvents;
}

export interface DaprBuildingBlock<Compiled = unknown> {
  readonly name: string;
  /** Component types the block serves (`state.redis`); a loaded Component no block serves gets MG1301. */
  readonly componentTypes: readonly string[];
  /** Capabilities of one of its components, for `/v1.0/metadata` (Dapr's strings: ETAG, TRANSACTIONAL, TTL, …). */
  capabilities?(component: ResolvedComponent): readonly string[];
  compile(input: DaprCompileInput): Compiled;
  /** The snapshot holding `compiled` became the active one (compile may run for a config that is then rejected). */
  activated?(compiled: Compiled, activation: DaprActivation): void;
  /**
   * The sidecar whose active snapshot holds `compiled` stops: release what it holds (connections,
   * subscriptions, timers). Tests and the demo run several sidecars in one process; the others keep theirs.
   */
  shutdown?(compiled: Compiled): Promise<void>;
  /** Adds the block's routes to an outbound listener's app. */
  register(app: FastifyInstance, host: DaprApiHost): void | Promise<void>;
  metadata?(compiled: Compiled): DaprMetadataContribution;
}
