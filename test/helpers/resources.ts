/** Build in-memory resources for unit tests that do not need the YAML loader. */
import type { Resource } from '../../gateway/config/resource.js';

let order = 0;

export function makeResource<Spec>(
  kind: string,
  name: string,
  spec: Spec,
  options: { namespace?: string; apiVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): Resource<Spec> {
  const position = { file: `test://${kind}/${name}`, line: 1, col: 1 };
  return {
    apiVersion: options.apiVersion ?? 'networking.istio.io/v1',
    kind,
    metadata: {
      name,
      namespace: options.namespace ?? 'default',
      labels: options.labels ?? {},
      annotations: options.annotations ?? {},
    },
    spec,
    source: { ...position, order: order++ },
    at: () => position,
  };
}
