/**
 * The proxy's own mesh identity: workload certificate files (rotated in place by cert-manager/SPIRE),
 * a development CA to self-issue from, or — with no certificates configured — an in-memory CA that is
 * only good for a single process trying things out.
 */
import type { FastifyBaseLogger } from 'fastify';
import { dirname, isAbsolute, resolve } from 'node:path';
import { statSync } from 'node:fs';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import { CertificateStore } from '../identity/cert-store.js';
import type { WorkloadInfo } from '../pipeline/types.js';
import type { CompiledConfig } from '../snapshot/snapshot.js';

const SELF_ISSUED_TTL_HOURS = 24;

/** A sidecar always does; an ingress only towards mesh workloads (auto-mTLS) or ISTIO_MUTUAL destinations. */
export function presentsMeshIdentity(config: Pick<CompiledConfig, 'sidecar' | 'clusterDefinitions'>): boolean {
  return (
    config.sidecar !== null ||
    config.clusterDefinitions.some((cluster) => cluster.policy.tls.mode === 'ISTIO_MUTUAL' || cluster.endpoints.some((endpoint) => endpoint.meshWorkload))
  );
}

export async function openCertificateStore(
  configPath: string,
  mesh: MeshConfigSpec,
  workload: WorkloadInfo,
  logger: FastifyBaseLogger,
  presentedToPeers = true,
): Promise<CertificateStore> {
  const base = statSync(configPath).isDirectory() ? configPath : dirname(configPath);
  const at = (path: string): string => (isAbsolute(path) ? path : resolve(base, path));
  const certificates = mesh.certificates;
  const identity = { trustDomain: mesh.trustDomain, namespace: workload.namespace, serviceAccount: workload.serviceAccount, logger };
  if (certificates?.caCert !== undefined && certificates.caKey !== undefined) {
    return CertificateStore.selfIssued({ ...identity, caCertPath: at(certificates.caCert), caKeyPath: at(certificates.caKey), ttlHours: SELF_ISSUED_TTL_HOURS });
  }
  if (certificates !== undefined) {
    const { certChain, privateKey, rootCert } = certificates;
    if (certChain === undefined || privateKey === undefined || rootCert === undefined) {
      throw new Error('MeshConfig.certificates needs certChain, privateKey and rootCert (or caCert and caKey to self-issue)');
    }
    return CertificateStore.fromFiles({
      files: { certChain: at(certChain), privateKey: at(privateKey), rootCert: at(rootCert) },
      trustDomain: mesh.trustDomain,
      logger,
    });
  }
  // Only worth a warning when another proxy will see this identity: an ingress without mesh upstreams never presents it.
  if (presentedToPeers) logger.warn('MeshConfig has no certificates: using an in-memory CA; other proxies will not trust this one');
  return CertificateStore.ephemeral({ ...identity, ttlHours: SELF_ISSUED_TTL_HOURS });
}
