/**
 * The MeshConfig the observability plugins compile from: the config set's MeshConfig with every
 * default filled in, or all defaults when there is none. Runs at compile time only.
 */
import { Value } from '@sinclair/typebox/value';
import type { Resource } from './resource.js';
import { MESH_CONFIG_API_VERSION, MeshConfigSpec, defaultMeshConfig } from './kinds/mesh-config.js';

export function findMeshConfig(resources: readonly Resource[]): Resource | undefined {
  return resources.find((resource) => resource.kind === 'MeshConfig' && resource.apiVersion === MESH_CONFIG_API_VERSION);
}

export function effectiveMeshConfig(resources: readonly Resource[]): MeshConfigSpec {
  const meshConfig = findMeshConfig(resources);
  if (meshConfig === undefined) return defaultMeshConfig();
  return Value.Default(MeshConfigSpec, structuredClone(meshConfig.spec)) as MeshConfigSpec;
}
