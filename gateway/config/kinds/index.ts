/**
 * The registry of config kinds: Istio's core kinds with every API version Istio serves them under
 * (the versions share one schema), meshgate's own kinds, and kinds contributed by plugins.
 */
import type { TObject, TSchema } from '@sinclair/typebox';
import { AuthorizationPolicySpec } from './authorization-policy.js';
import { DAPR_COMPONENT_TOP_LEVEL, DaprComponentSpec } from './dapr-component.js';
import { DAPR_SUBSCRIPTION_TOP_LEVEL, DaprSubscriptionV1Spec, DaprSubscriptionV2Spec } from './dapr-subscription.js';
import { DestinationRuleSpec } from './destination-rule.js';
import { GatewaySpec } from './gateway.js';
import { MeshConfigSpec } from './mesh-config.js';
import { PeerAuthenticationSpec } from './peer-authentication.js';
import { RequestAuthenticationSpec } from './request-authentication.js';
import { ServiceEntrySpec } from './service-entry.js';
import { SidecarSpec } from './sidecar.js';
import { VirtualServiceSpec } from './virtual-service.js';
import { WorkloadEntrySpec } from './workload-entry.js';

export const NETWORKING_GROUP = 'networking.istio.io';
export const SECURITY_GROUP = 'security.istio.io';
export const MESHGATE_GROUP = 'meshgate.dev';
export const DAPR_GROUP = 'dapr.io';

const NETWORKING_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;
const SECURITY_VERSIONS = ['v1', 'v1beta1'] as const;

export interface KindDefinition {
  readonly group: string;
  readonly versions: readonly string[];
  readonly kind: string;
  readonly spec: TSchema;
  /** Whether the kind came from a plugin (affects nothing but diagnostics and the published schema's ordering). */
  readonly origin: 'core' | 'plugin';
  /**
   * Fields the document carries at its top level beside `spec` (Dapr's `scopes`, `auth`), as one closed
   * object schema; validated like the spec and kept on the resource as `topLevel`.
   */
  readonly topLevel?: TObject;
}

/** A config kind contributed by a plugin; its TypeBox schema lives beside the plugin. */
export interface PluginKind {
  readonly group: string;
  readonly versions: readonly string[];
  readonly kind: string;
  readonly spec: TSchema;
}

export const CORE_KINDS: readonly KindDefinition[] = [
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: 'Gateway', spec: GatewaySpec, origin: 'core' },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: 'VirtualService', spec: VirtualServiceSpec, origin: 'core' },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: 'DestinationRule', spec: DestinationRuleSpec, origin: 'core' },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: 'ServiceEntry', spec: ServiceEntrySpec, origin: 'core' },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: 'WorkloadEntry', spec: WorkloadEntrySpec, origin: 'core' },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: 'Sidecar', spec: SidecarSpec, origin: 'core' },
  { group: SECURITY_GROUP, versions: SECURITY_VERSIONS, kind: 'AuthorizationPolicy', spec: AuthorizationPolicySpec, origin: 'core' },
  { group: SECURITY_GROUP, versions: SECURITY_VERSIONS, kind: 'PeerAuthentication', spec: PeerAuthenticationSpec, origin: 'core' },
  { group: SECURITY_GROUP, versions: SECURITY_VERSIONS, kind: 'RequestAuthentication', spec: RequestAuthenticationSpec, origin: 'core' },
  { group: MESHGATE_GROUP, versions: ['v1alpha1'], kind: 'MeshConfig', spec: MeshConfigSpec, origin: 'core' },
  { group: DAPR_GROUP, versions: ['v1alpha1'], kind: 'Component', spec: DaprComponentSpec, origin: 'core', topLevel: DAPR_COMPONENT_TOP_LEVEL },
  // Dapr's two Subscription versions have different shapes (route vs routes), hence two definitions.
  { group: DAPR_GROUP, versions: ['v2alpha1'], kind: 'Subscription', spec: DaprSubscriptionV2Spec, origin: 'core', topLevel: DAPR_SUBSCRIPTION_TOP_LEVEL },
  { group: DAPR_GROUP, versions: ['v1alpha1'], kind: 'Subscription', spec: DaprSubscriptionV1Spec, origin: 'core', topLevel: DAPR_SUBSCRIPTION_TOP_LEVEL },
];

export interface KindRegistry {
  readonly kinds: readonly KindDefinition[];
  /** The definition for an exact `apiVersion` + `kind`, or undefined. */
  lookup(apiVersion: string, kind: string): KindDefinition | undefined;
  /** Every definition with this kind name (to suggest the right apiVersion). */
  byKind(kind: string): readonly KindDefinition[];
}

export function buildKindRegistry(extraKinds: readonly PluginKind[] = []): KindRegistry {
  const kinds: KindDefinition[] = [...CORE_KINDS, ...extraKinds.map((extra) => ({ ...extra, origin: 'plugin' as const }))];
  const byApiVersionAndKind = new Map<string, KindDefinition>();
  for (const definition of kinds) {
    for (const version of definition.versions) {
      const key = `${definition.group}/${version}\u0000${definition.kind}`;
      // The first registration of a kind wins; a plugin cannot redefine a core kind.
      if (!byApiVersionAndKind.has(key)) byApiVersionAndKind.set(key, definition);
    }
  }
  return {
    kinds,
    lookup: (apiVersion, kind) => byApiVersionAndKind.get(`${apiVersion}\u0000${kind}`),
    byKind: (kind) => kinds.filter((definition) => definition.kind === kind),
  };
}
