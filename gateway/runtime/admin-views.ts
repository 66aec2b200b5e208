/**
 * The feature views on the admin port: Prometheus metrics, a readable stats page, upstream cluster
 * health, the proxy's certificates, and an authorization explainer that uses the live compiled policies.
 */
import type { AdminView } from '../admin/server.js';
import type { CertificateStore } from '../identity/cert-store.js';
import type { CertificateSummary, ServedCertificate } from '../listeners/tls-server.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { MetricsExposition } from '../pipeline/capabilities.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { describedRequestFrom } from './explain-input.js';
import type { Explainer } from './plugin-capabilities.js';
import type { ToWorker, ViewAnswer } from './worker-protocol.js';

const JSON_TYPE = 'application/json; charset=utf-8';

export interface AdminViewSources {
  readonly clusters: ClusterManager;
  readonly identity: CertificateStore;
  /** The Gateway servers' certificates on the open TLS listeners. */
  readonly servedCertificates: () => readonly ServedCertificate[];
  readonly snapshot: () => Snapshot | null;
  readonly exposition: MetricsExposition;
  /** Null when no plugin explains its decisions: then there is no `/explain`. */
  readonly explainer: Explainer | null;
}

/** The views over one runtime's own state: with several workers, the supervisor asks one worker for them. */
const FORWARDED_VIEWS: readonly { readonly path: string; readonly method: 'GET' | 'POST' }[] = [
  { path: '/clusters', method: 'GET' },
  { path: '/certs', method: 'GET' },
  { path: '/explain', method: 'POST' },
];

/** What the supervisor of several workers (worker-supervisor.ts) answers its views from. */
export interface WorkersViewSources {
  readonly exposition: MetricsExposition;
  /** Every live worker's series, as MetricsExposition.workerSeries hands them over. */
  readonly workerMetrics: () => Promise<unknown[]>;
  /** One worker's answer for a view over its own state. */
  readonly askOne: (view: Omit<Extract<ToWorker, { readonly type: 'view' }>, 'type' | 'id'>) => Promise<ViewAnswer>;
}

/** With workers: metrics merge every worker's; the other views show one worker's state (each has its own pools and snapshot). */
export function workersViews({ exposition, workerMetrics, askOne }: WorkersViewSources): AdminView[] {
  const prometheus: AdminView['handle'] = async () => exposition.mergedPrometheus(await workerMetrics());
  const forwarded = FORWARDED_VIEWS.map(({ path, method }): AdminView => ({ path, method, handle: async (query, body) => askOne({ path, method, query, body }) }));
  return [
    { path: '/stats/prometheus', handle: prometheus },
    { path: '/metrics', handle: prometheus },
    { path: '/stats', handle: async () => ({ contentType: 'text/plain; charset=utf-8', body: await exposition.mergedStatsText(await workerMetrics()) }) },
    ...forwarded,
  ];
}

function secondsUntil(date: Date, now: number): number {
  return Math.round((date.getTime() - now) / 1000);
}

function describeSummary(certificate: CertificateSummary, now: number) {
  return {
    subject: certificate.subject,
    issuer: certificate.issuer,
    serialNumber: certificate.serialNumber,
    validFrom: certificate.validFrom.toISOString(),
    validTo: certificate.validTo.toISOString(),
    secondsToExpiry: secondsUntil(certificate.validTo, now),
    fingerprint256: certificate.fingerprint256,
  };
}

function describeServed(certificate: ServedCertificate, now: number) {
  return {
    listener: certificate.listener,
    server: certificate.server,
    hosts: certificate.hosts,
    certPath: certificate.certPath,
    subjectAltNames: certificate.subjectAltNames,
    ...describeSummary(certificate, now),
    chain: certificate.chain.map((link) => describeSummary(link, now)),
    clientCaPath: certificate.clientCaPath,
    clientCertificateAuthorities: certificate.clientCertificateAuthorities.map((ca) => describeSummary(ca, now)),
  };
}

export function adminViews(sources: AdminViewSources): AdminView[] {
  const { exposition, explainer } = sources;
  const prometheus: AdminView['handle'] = () => exposition.prometheus();
  const views: AdminView[] = [
    { path: '/stats/prometheus', handle: prometheus },
    { path: '/metrics', handle: prometheus },
    { path: '/stats', handle: async () => ({ contentType: 'text/plain; charset=utf-8', body: await exposition.statsText() }) },
    {
      path: '/clusters',
      handle: async () => {
        const now = Date.now();
        const clusters = sources.clusters.stats().map((cluster) => ({
          ...cluster,
          endpoints: cluster.endpoints.map((e) => ({ ...e, ejectedForMs: e.ejectedUntil === null ? 0 : Math.max(0, e.ejectedUntil - now) })),
        }));
        return { contentType: JSON_TYPE, body: JSON.stringify({ clusters }, null, 2) };
      },
    },
    {
      path: '/certs',
      handle: async () => {
        const store = sources.identity;
        const now = Date.now();
        const body = {
          identity: store.identity,
          expiresAt: store.expiresAt.toISOString(),
          secondsToExpiry: secondsUntil(store.expiresAt, now),
          trustBundle: store.trustBundle.map((cert) => ({ subject: cert.subject, validTo: cert.validTo, fingerprint256: cert.fingerprint256 })),
          servedCertificates: sources.servedCertificates().map((certificate) => describeServed(certificate, now)),
        };
        return { contentType: JSON_TYPE, body: JSON.stringify(body, null, 2) };
      },
    },
  ];
  if (explainer === null) return views;
  views.push({
    path: '/explain',
    method: 'POST',
    handle: async (_query, body) => {
      const snapshot = sources.snapshot();
      const described = describedRequestFrom(body);
      if (snapshot === null || !described.ok) {
        return { status: 400, contentType: JSON_TYPE, body: JSON.stringify({ error: described.ok ? 'no active configuration' : described.error }) };
      }
      return { contentType: JSON_TYPE, body: JSON.stringify(explainer(snapshot.pluginStates, described.request), null, 2) };
    },
  });
  return views;
}
