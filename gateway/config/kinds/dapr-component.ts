/**
 * `dapr.io/v1alpha1` Component, as Dapr writes it: the building block's backend (`spec.type` such as
 * `state.redis`) and its `metadata` name/value list, where a value may come from a secret. Beside
 * `spec`, at the top level of the document, Dapr puts `scopes` (the app ids that may load the
 * component) and `auth.secretStore` (where `secretKeyRef`s are resolved): see DAPR_COMPONENT_TOP_LEVEL.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { strictObject, stringList } from './common.js';

export const DaprSecretKeyRef = strictObject(
  {
    name: Type.String({ minLength: 1, description: 'Secret name (an environment variable for `secretstores.local.env`, a flattened JSON key for `secretstores.local.file`, a secret directory under MeshConfig `credentialsDirectory` without `auth`).' }),
    key: Type.Optional(Type.String({ description: 'Key inside the secret (a file name in the secret directory). Single-value stores accept only the secret name itself.' })),
  },
  'A metadata value read from a secret store instead of written inline.',
);
export type DaprSecretKeyRef = Static<typeof DaprSecretKeyRef>;

export const DaprMetadataItem = strictObject(
  {
    name: Type.String({ minLength: 1, description: 'Metadata field name, e.g. `redisHost` (component-specific).' }),
    value: Type.Optional(
      Type.Union([Type.String(), Type.Number(), Type.Boolean()], {
        description: 'Inline value. Numbers and booleans are read as their text, as Dapr does (`"6379"` and `6379` are the same).',
      }),
    ),
    secretKeyRef: Type.Optional(DaprSecretKeyRef),
    envRef: Type.Optional(Type.String({ minLength: 1, description: 'Name of an environment variable of the sidecar process that holds the value.' })),
  },
  'One metadata field of a component; exactly one of `value`, `secretKeyRef` or `envRef`.',
);
export type DaprMetadataItem = Static<typeof DaprMetadataItem>;

export const DaprComponentSpec = strictObject(
  {
    type: Type.String({
      pattern: '^[a-z0-9]+\\.[A-Za-z0-9._-]+$',
      description: 'Building block and backend, e.g. `state.redis`, `state.in-memory`, `pubsub.redis`, `pubsub.rabbitmq`, `secretstores.local.env`.',
    }),
    version: Type.String({ default: 'v1', description: 'Component version; meshgate serves `v1`.' }),
    ignoreErrors: Type.Optional(Type.Boolean({ description: 'Dapr: start even if the component fails to initialise. meshgate: a backend that is down never blocks start-up anyway; configuration errors are always reported.' })),
    initTimeout: Type.Optional(Type.String({ description: 'Dapr: how long initialisation may take. Accepted and ignored: meshgate connects in the background.' })),
    metadata: Type.Optional(Type.Array(DaprMetadataItem, { description: 'The component\'s settings as name/value pairs.' })),
  },
  'Dapr Component: a state store, pub/sub broker or secret store the sidecar\'s Dapr API serves.',
);
export type DaprComponentSpec = Static<typeof DaprComponentSpec>;

/** Dapr's top-level fields beside `spec` (the envelope accepts them for dapr.io kinds only). */
export const DaprScopes = stringList('App ids that may use this resource; absent or empty: every app of the namespace.');

export const DAPR_COMPONENT_TOP_LEVEL = strictObject(
  {
    scopes: Type.Optional(DaprScopes),
    auth: Type.Optional(
      strictObject(
        { secretStore: Type.String({ minLength: 1, description: 'Name of a `secretstores.*` Component (same namespace) that resolves this component\'s `secretKeyRef`s.' }) },
        'Where this component\'s secrets come from.',
      ),
    ),
  },
  'Top-level fields of a Dapr Component beside spec.',
);
export type DaprComponentTopLevel = Static<typeof DAPR_COMPONENT_TOP_LEVEL>;
