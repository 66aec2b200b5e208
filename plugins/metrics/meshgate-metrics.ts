/**
 * meshgate's own series (Prometheus naming: base units, `_total` counters). Other modules never touch
 * prom-client directly: they call these typed functions, so names and label sets stay in one place.
 */
import type { Diagnostic, Severity } from '../../gateway/config/resource.js';
import type { PubSubPublishResult, ReloadResult, UpstreamClusterSample } from '../../gateway/pipeline/capabilities.js';
import { BoundedCounter, BoundedGauge } from './registry.js';
import type { PreparedCounter } from './registry.js';

const buildInfo = new BoundedGauge({
  name: 'meshgate_build_info',
  help: 'Always 1; the labels say which meshgate build and Node.js runtime this process runs.',
  labelNames: ['version', 'node_version'],
  maxSeries: 4,
  merge: 'first',
});

const configGeneration = new BoundedGauge({
  name: 'meshgate_config_generation',
  help: 'Generation number of the config snapshot currently serving requests.',
  labelNames: [],
  merge: 'min',
});

const configReloads = new BoundedCounter({
  name: 'meshgate_config_reloads_total',
  help: 'Config loads by outcome: applied, rejected (diagnostics with severity error) or failed (unreadable input).',
  labelNames: ['result'],
});

const configCompiles = new BoundedCounter({
  name: 'meshgate_config_compiles_total',
  help: 'Times the config files were read, validated and compiled (a start, a reload): once each however many workers serve, as the workers build their snapshots from that compile.',
  labelNames: [],
});

const configDiagnostics = new BoundedGauge({
  name: 'meshgate_config_diagnostics',
  help: 'Diagnostics of the last config load, by severity.',
  labelNames: ['severity'],
  merge: 'first',
});

const authzDecisions = new BoundedCounter({
  name: 'meshgate_authz_decisions_total',
  help: 'AuthorizationPolicy decisions by deciding policy (`<ns>/<name>` or `none`), action and result.',
  labelNames: ['policy', 'action', 'result'],
});

const rateLimitDecisions = new BoundedCounter({
  name: 'meshgate_ratelimit_decisions_total',
  help: 'RateLimitPolicy decisions by policy (`<ns>/<name>`) and result.',
  labelNames: ['policy', 'result'],
});

const upstreamConnectErrors = new BoundedCounter({
  name: 'meshgate_upstream_connect_errors_total',
  help: 'Failed connection attempts to upstream hosts, by cluster, including attempts a retry then hid from the client.',
  labelNames: ['cluster'],
});

const upstreamRequestsActive = new BoundedGauge({
  name: 'meshgate_upstream_requests_active',
  help: 'Requests in flight to upstream hosts, by cluster.',
  labelNames: ['cluster'],
});

const upstreamOverflow = new BoundedCounter({
  name: 'meshgate_upstream_overflow_total',
  help: 'Requests refused by a circuit breaker (connection pool limits, response flag UO), by cluster.',
  labelNames: ['cluster'],
});

const outlierEjections = new BoundedCounter({
  name: 'meshgate_outlier_ejections_total',
  help: 'Hosts ejected by outlier detection, by cluster.',
  labelNames: ['cluster'],
});

const upstreamRetries = new BoundedCounter({
  name: 'meshgate_upstream_retries_total',
  help: 'Upstream request retries (attempts after the first), by cluster.',
  labelNames: ['cluster'],
});

const rateLimitBackendState = new BoundedGauge({
  name: 'meshgate_ratelimit_backend_state',
  help: 'State of the shared rate-limit store (Redis): 1 for the current state (unused, connecting, up, down), 0 for the others.',
  labelNames: ['state'],
  merge: 'max',
});

const rateLimitBackendErrors = new BoundedCounter({
  name: 'meshgate_ratelimit_backend_errors_total',
  help: 'Calls to the shared rate-limit store that failed (refused while disconnected, timed out, errored).',
  labelNames: [],
});

const rateLimitFallbackDecisions = new BoundedCounter({
  name: 'meshgate_ratelimit_fallback_decisions_total',
  help: 'Rate-limit decisions taken by the in-memory insurance limiter because the shared store failed (failureMode open).',
  labelNames: [],
});

const rateLimitBackendTransitions = new BoundedCounter({
  name: 'meshgate_ratelimit_backend_transitions_total',
  help: 'up→down and down→up changes of the connection to the shared rate-limit store.',
  labelNames: [],
});

const abusiveSessions = new BoundedCounter({
  name: 'meshgate_downstream_http2_abusive_sessions_total',
  help: 'Client HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM for resetting too many streams (Rapid Reset, MadeYouReset), by listener.',
  labelNames: ['listener'],
});

const pluginErrors = new BoundedCounter({
  name: 'meshgate_plugin_errors_total',
  help: 'User plugin hooks that threw or rejected, by plugin (`<ns>/<name>`) and what happened to the request: local_reply (500, FAIL_CLOSE) or skipped (FAIL_OPEN).',
  labelNames: ['plugin', 'outcome'],
});

const certificateExpiry = new BoundedGauge({
  name: 'meshgate_certificate_expiry_timestamp_seconds',
  help: 'notAfter of certificates in use (Unix seconds), by identity: the SPIFFE URI of the mesh certificate, or the Gateway server (`server.name`, else `<namespace>/<gateway>/<index>`) presenting a served certificate.',
  labelNames: ['identity'],
  merge: 'min',
});

let currentBuild: { version: string; node_version: string } | null = null;

export function setBuildInfo(version: string): void {
  if (currentBuild !== null) buildInfo.remove(currentBuild);
  currentBuild = { version, node_version: process.versions.node };
  buildInfo.set(currentBuild, 1);
}

setBuildInfo('unknown');

export function setConfigGeneration(generation: number): void {
  configGeneration.set({}, generation);
}

export function recordReload(result: ReloadResult): void {
  configReloads.inc({ result });
}

export function recordConfigCompile(): void {
  configCompiles.inc({});
}

const SEVERITIES: readonly Severity[] = ['error', 'warning', 'info'];

export function setConfigDiagnostics(diagnostics: readonly Diagnostic[]): void {
  for (const severity of SEVERITIES) {
    configDiagnostics.set({ severity }, diagnostics.filter((diagnostic) => diagnostic.severity === severity).length);
  }
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'CUSTOM' | 'AUDIT';
export type AuthzResult = 'allowed' | 'denied';

/** `policy` is the `<namespace>/<name>` that decided, or `none` when no policy matched. */
export function recordAuthzDecision(policy: string, action: AuthzAction, result: AuthzResult): void {
  authzDecisions.inc({ policy, action, result });
}

/** The series `recordAuthzDecision` counts, kept by a caller whose decisions recur (label values from config, not from requests). */
export function authzDecisionSeries(policy: string, action: AuthzAction, result: AuthzResult): PreparedCounter {
  return authzDecisions.series({ policy, action, result });
}

export type RateLimitResult = 'allowed' | 'limited' | 'store_error';

/** The series of one policy's decisions of one result, kept by the compiled policy (label values from config, not from requests). */
export function rateLimitDecisionSeries(policy: string, result: RateLimitResult): PreparedCounter {
  return rateLimitDecisions.series({ policy, result });
}

export function recordUpstreamOverflow(cluster: string): void {
  upstreamOverflow.inc({ cluster });
}

type UpstreamSource = () => readonly UpstreamClusterSample[];

/** Per source (one per running proxy; tests run several in one process), the cumulative counts seen at the last scrape. */
const upstreamSources = new Map<UpstreamSource, { readonly ejections: Map<string, number>; readonly connectFailures: Map<string, number> }>();

/** What a cumulative cluster count added since the last scrape; a cluster rebuilt by a reload starts again from 0. */
function sinceLastScrape(seen: Map<string, number>, name: string, total: number): number {
  const previous = seen.get(name) ?? 0;
  seen.set(name, total);
  return total >= previous ? total - previous : total;
}

/** The running proxy registers where its cluster statistics come from; call the result when it stops. */
export function observeUpstreams(source: UpstreamSource): () => void {
  upstreamSources.set(source, { ejections: new Map(), connectFailures: new Map() });
  return () => void upstreamSources.delete(source);
}

/** Brings the upstream gauges and the ejection counter up to date; called before each scrape. */
export function refreshUpstreamMetrics(): void {
  for (const [source, seen] of upstreamSources) {
    for (const cluster of source()) {
      upstreamRequestsActive.set({ cluster: cluster.name }, cluster.active);
      const newEjections = sinceLastScrape(seen.ejections, cluster.name, cluster.ejections);
      if (newEjections > 0) outlierEjections.inc({ cluster: cluster.name }, newEjections);
      const newConnectFailures = sinceLastScrape(seen.connectFailures, cluster.name, cluster.connectFailures);
      if (newConnectFailures > 0) upstreamConnectErrors.inc({ cluster: cluster.name }, newConnectFailures);
    }
  }
}

export function recordPluginError(plugin: string, outcome: 'local_reply' | 'skipped'): void {
  pluginErrors.inc({ plugin, outcome });
}

export function recordUpstreamRetry(cluster: string): void {
  upstreamRetries.inc({ cluster });
}

/** What the rate limiter keeps about its shared store; read at scrape time. */
export interface RateLimitBackendSample {
  readonly state: 'unused' | 'connecting' | 'up' | 'down';
  readonly errors: number;
  readonly fallbackDecisions: number;
  readonly transitions: number;
}

const RATE_LIMIT_BACKEND_STATES: readonly RateLimitBackendSample['state'][] = ['unused', 'connecting', 'up', 'down'];
let rateLimitSource: (() => RateLimitBackendSample) | null = null;
const rateLimitSeen = new Map<string, number>();

/** The rate limiter registers where its store statistics come from. */
export function observeRateLimitBackend(source: () => RateLimitBackendSample): void {
  rateLimitSource = source;
}

/** Brings the rate-limit store series up to date; called before each scrape. */
export function refreshRateLimitMetrics(): void {
  if (rateLimitSource === null) return;
  const sample = rateLimitSource();
  for (const state of RATE_LIMIT_BACKEND_STATES) rateLimitBackendState.set({ state }, state === sample.state ? 1 : 0);
  const errors = sinceLastScrape(rateLimitSeen, 'errors', sample.errors);
  if (errors > 0) rateLimitBackendErrors.inc({}, errors);
  const fallback = sinceLastScrape(rateLimitSeen, 'fallback', sample.fallbackDecisions);
  if (fallback > 0) rateLimitFallbackDecisions.inc({}, fallback);
  const transitions = sinceLastScrape(rateLimitSeen, 'transitions', sample.transitions);
  if (transitions > 0) rateLimitBackendTransitions.inc({}, transitions);
}

export function recordAbusiveSession(listener: string): void {
  abusiveSessions.inc({ listener });
}

export function setCertificateExpiry(identity: string, notAfter: Date): void {
  certificateExpiry.set({ identity }, Math.floor(notAfter.getTime() / 1000));
}

export function removeCertificateExpiry(identity: string): void {
  certificateExpiry.remove({ identity });
}

const pubsubPublishes = new BoundedCounter({
  name: 'meshgate_pubsub_publish_total',
  help: 'Dapr pub/sub publishes by pub/sub component, topic and result (published, forbidden, invalid, broker_error).',
  labelNames: ['pubsub', 'topic', 'result'],
});

const pubsubDeliveries = new BoundedCounter({
  name: 'meshgate_pubsub_deliveries_total',
  help: 'Dapr pub/sub messages handled for the local app, by pub/sub component, topic and result (delivered, dropped, dead-lettered, expired, returned-to-broker).',
  labelNames: ['pubsub', 'topic', 'result'],
});

const pubsubDeliveryAttempts = new BoundedCounter({
  name: 'meshgate_pubsub_delivery_attempts_total',
  help: 'HTTP deliveries of pub/sub events to the local app (retries included), by pub/sub component and topic.',
  labelNames: ['pubsub', 'topic'],
});

export function recordPubSubPublish(pubsub: string, topic: string, result: PubSubPublishResult): void {
  pubsubPublishes.inc({ pubsub, topic, result });
}

export function recordPubSubDelivery(pubsub: string, topic: string, result: string, attempts: number): void {
  pubsubDeliveries.inc({ pubsub, topic, result });
  if (attempts > 0) pubsubDeliveryAttempts.inc({ pubsub, topic }, attempts);
}
