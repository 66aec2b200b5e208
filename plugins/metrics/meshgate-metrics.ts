/**
 * meshgate's own series of the core's events (Prometheus naming: base units, `_total` counters), which
 * the core reports through the metrics plugin's proxyEvents. A plugin's own series (authz and
 * rate-limit decisions, user plugin errors) are defined in that plugin's folder.
 */
import type { Diagnostic, Severity } from '../../gateway/config/resource.js';
import type { PubSubPublishResult, ReloadResult, UpstreamClusterSample } from '../../gateway/pipeline/capabilities.js';
import { BoundedCounter, BoundedGauge, refreshBeforeScrape, sinceLastScrape } from '../../gateway/metrics/registry.js';
import type { PreparedCounter } from '../../gateway/metrics/registry.js';

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

const abusiveSessions = new BoundedCounter({
  name: 'meshgate_downstream_http2_abusive_sessions_total',
  help: 'Client HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM for resetting too many streams (Rapid Reset, MadeYouReset), by listener.',
  labelNames: ['listener'],
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

export function recordUpstreamOverflow(cluster: string): void {
  upstreamOverflow.inc({ cluster });
}

type UpstreamSource = () => readonly UpstreamClusterSample[];

/** Per source (one per running proxy; tests run several in one process), the cumulative counts seen at the last scrape. */
const upstreamSources = new Map<UpstreamSource, { readonly ejections: Map<string, number>; readonly connectFailures: Map<string, number> }>();

/** The running proxy registers where its cluster statistics come from; call the result when it stops. */
export function observeUpstreams(source: UpstreamSource): () => void {
  upstreamSources.set(source, { ejections: new Map(), connectFailures: new Map() });
  return () => void upstreamSources.delete(source);
}

/** Brings the upstream gauges and the ejection counter up to date before each scrape. */
function refreshUpstreamMetrics(): void {
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

refreshBeforeScrape(refreshUpstreamMetrics);

export function recordUpstreamRetry(cluster: string): void {
  upstreamRetries.inc({ cluster });
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

/** Topics are the client's to name, so only this many of each counter's series are kept prepared; the rest count through `inc`. */
const MAX_PREPARED_PUBSUB_SERIES = 1000;

/**
 * The pub/sub counters' series prepared per pubsub, topic and result: a publish or a delivery counts
 * with two map lookups instead of building and hashing its labels (2 % of a publishing sidecar's CPU).
 */
class PubSubSeries<R extends string> {
  private readonly byPubSub = new Map<string, Map<string, Map<R, PreparedCounter>>>();
  private size = 0;

  constructor(private readonly prepare: (pubsub: string, topic: string, result: R) => PreparedCounter) {}

  /** The series, or null once MAX_PREPARED_PUBSUB_SERIES are prepared and this one is not. */
  get(pubsub: string, topic: string, result: R): PreparedCounter | null {
    let byTopic = this.byPubSub.get(pubsub);
    let byResult = byTopic?.get(topic);
    const found = byResult?.get(result);
    if (found !== undefined) return found;
    if (this.size >= MAX_PREPARED_PUBSUB_SERIES) return null;
    if (byTopic === undefined) this.byPubSub.set(pubsub, (byTopic = new Map()));
    if (byResult === undefined) byTopic.set(topic, (byResult = new Map()));
    const series = this.prepare(pubsub, topic, result);
    byResult.set(result, series);
    this.size++;
    return series;
  }
}

const publishSeries = new PubSubSeries<PubSubPublishResult>((pubsub, topic, result) => pubsubPublishes.series({ pubsub, topic, result }));
const deliverySeries = new PubSubSeries<string>((pubsub, topic, result) => pubsubDeliveries.series({ pubsub, topic, result }));
const attemptSeries = new PubSubSeries<''>((pubsub, topic) => pubsubDeliveryAttempts.series({ pubsub, topic }));

export function recordPubSubPublish(pubsub: string, topic: string, result: PubSubPublishResult): void {
  const series = publishSeries.get(pubsub, topic, result);
  if (series !== null) series.inc();
  else pubsubPublishes.inc({ pubsub, topic, result });
}

export function recordPubSubDelivery(pubsub: string, topic: string, result: string, attempts: number): void {
  const series = deliverySeries.get(pubsub, topic, result);
  if (series !== null) series.inc();
  else pubsubDeliveries.inc({ pubsub, topic, result });
  if (attempts <= 0) return;
  const attempted = attemptSeries.get(pubsub, topic, '');
  if (attempted !== null) attempted.inc(attempts);
  else pubsubDeliveryAttempts.inc({ pubsub, topic }, attempts);
}
