/** `security.istio.io` AuthorizationPolicy (docs/policies.md#authorizationpolicy): access control on inbound traffic. */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { PolicyTargetReference, WorkloadSelector, stringEnum, stringList, strictObject } from './common.js';

const valueList = (attribute: string) => stringList(`${attribute}: exact, \`prefix*\`, \`*suffix\` or \`*\` (present).`);

export const Source = strictObject(
  {
    principals: Type.Optional(valueList('Peer identities `<trustDomain>/ns/<ns>/sa/<sa>` (mTLS)')),
    notPrincipals: Type.Optional(valueList('Negated principals')),
    requestPrincipals: Type.Optional(valueList('JWT principals `<iss>/<sub>`')),
    notRequestPrincipals: Type.Optional(valueList('Negated JWT principals')),
    namespaces: Type.Optional(valueList('Peer namespaces (mTLS)')),
    notNamespaces: Type.Optional(valueList('Negated namespaces')),
    serviceAccounts: Type.Optional(Type.Array(Type.String(), { maxItems: 16, description: '`<ns>/<sa>` or `<sa>` (policy namespace), exact only.' })),
    notServiceAccounts: Type.Optional(Type.Array(Type.String(), { maxItems: 16, description: 'Negated service accounts.' })),
    trustDomains: Type.Optional(valueList('Peer trust domains')),
    notTrustDomains: Type.Optional(valueList('Negated trust domains')),
    ipBlocks: Type.Optional(stringList('Direct peer IPs or CIDRs.')),
    notIpBlocks: Type.Optional(stringList('Negated peer IPs or CIDRs.')),
    remoteIpBlocks: Type.Optional(stringList('Original client IPs (X-Forwarded-For, trusted hops) or CIDRs.')),
    notRemoteIpBlocks: Type.Optional(stringList('Negated original client IPs or CIDRs.')),
  },
  'Who sends the request; set fields are AND-ed.',
);
export type Source = Static<typeof Source>;

export const Operation = strictObject(
  {
    hosts: Type.Optional(valueList('Host/:authority as received, port included, case-insensitive')),
    notHosts: Type.Optional(valueList('Negated hosts')),
    ports: Type.Optional(stringList('Destination ports (numeric strings).')),
    notPorts: Type.Optional(stringList('Negated ports.')),
    methods: Type.Optional(valueList('HTTP methods')),
    notMethods: Type.Optional(valueList('Negated methods')),
    paths: Type.Optional(valueList('Normalised paths without query; `{*}`/`{**}` templates')),
    notPaths: Type.Optional(valueList('Negated paths')),
  },
  'What the request does; set fields are AND-ed.',
);
export type Operation = Static<typeof Operation>;

export const Condition = strictObject(
  {
    key: Type.String({ description: 'Attribute, e.g. `request.headers[x-foo]`, `source.ip`, `request.auth.claims[groups]`.' }),
    values: Type.Optional(stringList('Values that match (OR).')),
    notValues: Type.Optional(stringList('Values that must not match.')),
  },
  'An extra condition; at least one of values/notValues.',
);
export type Condition = Static<typeof Condition>;

export const Rule = strictObject(
  {
    from: Type.Optional(Type.Array(strictObject({ source: Type.Optional(Source) }, 'A source.'), { description: 'Sources (OR).' })),
    to: Type.Optional(Type.Array(strictObject({ operation: Type.Optional(Operation) }, 'An operation.'), { description: 'Operations (OR).' })),
    when: Type.Optional(Type.Array(Condition, { description: 'Conditions (AND).' })),
  },
  'A rule: from AND to AND when. An empty rule matches everything.',
);
export type Rule = Static<typeof Rule>;

export const AuthorizationPolicySpec = strictObject(
  {
    selector: Type.Optional(WorkloadSelector),
    targetRef: Type.Optional(PolicyTargetReference),
    targetRefs: Type.Optional(Type.Array(PolicyTargetReference, { description: 'Attachment targets (not used by meshgate yet).' })),
    rules: Type.Optional(Type.Array(Rule, { description: 'Rules (OR). Empty ⇒ the policy never matches (ALLOW = allow-nothing).' })),
    action: Type.Optional(stringEnum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'], 'What a match does (default ALLOW).', 'ALLOW')),
    provider: Type.Optional(
      strictObject({ name: Type.String({ description: 'Extension provider name.' }) }, 'External authorizer (CUSTOM only).'),
    ),
  },
  'AuthorizationPolicy: access control for inbound traffic.',
);
export type AuthorizationPolicySpec = Static<typeof AuthorizationPolicySpec>;
