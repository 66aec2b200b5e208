/**
 * The resource that loads and places a user plugin: `meshgate.dev/v1alpha1 Plugin`, and Istio's
 * `extensions.istio.io/v1alpha1 WasmPlugin` under the same schema (the fields that make sense for an
 * ES module: selector, targetRefs, match, phase, priority, url, sha256, pluginConfig, failStrategy).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { PortNumber, WorkloadSelector, described, strictObject, stringEnum } from '../../gateway/config/kinds/common.js';

export const PLUGIN_KINDS = [
  { group: 'meshgate.dev', version: 'v1alpha1', kind: 'Plugin' },
  { group: 'extensions.istio.io', version: 'v1alpha1', kind: 'WasmPlugin' },
] as const;

export const PHASES = ['AUTHN', 'AUTHZ', 'STATS', 'UNSPECIFIED_PHASE'] as const;
export type Phase = (typeof PHASES)[number];

/** A targetRef kind and what it scopes the plugin to. */
export const TARGET_KINDS = ['Gateway', 'VirtualService'] as const;

const TargetRef = strictObject(
  {
    group: Type.Optional(Type.String({ description: 'API group; ignored (`networking.istio.io` and `gateway.networking.k8s.io` Gateways are both meshgate Gateways).' })),
    kind: stringEnum(TARGET_KINDS, '`Gateway`: the listeners of that Gateway\'s server ports. `VirtualService` (meshgate): the routes of that VirtualService.'),
    name: Type.String({ minLength: 1, description: 'Name of the target.' }),
    namespace: Type.Optional(Type.String({ minLength: 1, description: 'Namespace of the target; default the plugin\'s namespace.' })),
    sectionName: Type.Optional(
      Type.String({ minLength: 1, description: 'VirtualService only: the name of one `http` rule; absent: every rule.' }),
    ),
  },
  'What the plugin attaches to; several targets add up.',
);

const TrafficSelector = strictObject(
  {
    mode: stringEnum(
      ['UNDEFINED', 'CLIENT', 'SERVER', 'CLIENT_AND_SERVER'],
      'CLIENT: a sidecar\'s outbound listener. SERVER: gateway listeners and a sidecar\'s inbound listener. UNDEFINED / CLIENT_AND_SERVER: both.',
      'UNDEFINED',
    ),
    ports: Type.Optional(
      Type.Array(strictObject({ number: described(PortNumber, 'The port the proxy received the request on.') }, 'A port.'), {
        description: 'Listener ports; absent: every port.',
      }),
    ),
  },
  'A traffic selector; the plugin applies when any selector matches.',
);

export const PluginSpec = strictObject(
  {
    selector: Type.Optional(WorkloadSelector),
    targetRefs: Type.Optional(Type.Array(TargetRef, { minItems: 1, description: 'Gateways or VirtualServices the plugin attaches to; excludes `selector`.' })),
    match: Type.Optional(Type.Array(TrafficSelector, { minItems: 1, description: 'Which listeners (mode, port); absent: all.' })),
    phase: stringEnum(PHASES, 'Where in the pipeline: before authn (AUTHN), between authn and authz (AUTHZ), after authz and routing (STATS), or last before forwarding (UNSPECIFIED_PHASE).', 'UNSPECIFIED_PHASE'),
    priority: Type.Integer({ default: 0, minimum: -2147483648, maximum: 2147483647, description: 'Within a phase, higher runs first; ties by namespace/name.' }),
    url: Type.String({
      minLength: 1,
      description: 'The ES module: `file:///abs/path.js`, a path relative to the config file (`./x.js`, `../x.js`), an absolute path, or an installed package name resolved from the config directory.',
    }),
    sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'Expected SHA-256 of the module file; a mismatch rejects the config.' })),
    pluginConfig: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Passed to the plugin, validated against its `configSchema`.' })),
    failStrategy: stringEnum(['FAIL_CLOSE', 'FAIL_OPEN'], 'When the plugin throws: answer 500 (FAIL_CLOSE) or skip the plugin for that request (FAIL_OPEN).', 'FAIL_CLOSE'),
    type: Type.Optional(stringEnum(['HTTP', 'UNSPECIFIED_PLUGIN_TYPE'], 'Only HTTP plugins exist in meshgate.')),
  },
  'A user plugin: an ES module placed in the request pipeline by phase and priority.',
);
export type PluginSpec = Static<typeof PluginSpec>;
