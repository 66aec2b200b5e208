/**
 * `meshgate.dev/v1alpha1` RateLimitPolicy: rate limiting as a declarative resource instead of an
 * EnvoyFilter patch. Scope and value patterns are the ones AuthorizationPolicy uses, so a user who
 * knows one knows the other. Cross-field rules the schema cannot express live in `validate.ts`.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { WorkloadSelector, described, durationString, strictObject, stringEnum, stringList } from '../../gateway/config/kinds/common.js';

export const RATE_LIMIT_GROUP = 'meshgate.dev';
export const RATE_LIMIT_VERSION = 'v1alpha1';
export const RATE_LIMIT_API_VERSION = `${RATE_LIMIT_GROUP}/${RATE_LIMIT_VERSION}`;
export const RATE_LIMIT_KIND = 'RateLimitPolicy';

export const DEFAULT_BACKEND = 'local';
export const DEFAULT_FAILURE_MODE = 'open';
export const DEFAULT_MISSING_KEY = 'bucket';
export const DEFAULT_LIMITED_STATUS = 429;
export const DEFAULT_COST = 1;

const valueList = (attribute: string) => stringList(`${attribute}: exact, \`prefix*\`, \`*suffix\` or \`*\` (any non-empty value); any entry may match.`);

const emptyObject = (description: string) => strictObject({}, description);

export const KeyPart = Type.Union(
  [
    strictObject({ remoteIp: emptyObject('Client IP after trusted-hop X-Forwarded-For handling (never the raw header).') }, 'Count by client IP.'),
    strictObject(
      {
        header: strictObject(
          { name: Type.String({ minLength: 1, description: 'Request header name (case-insensitive); repeated headers are joined with `,`.' }) },
          'A request header.',
        ),
      },
      'Count by a request header value.',
    ),
    strictObject(
      {
        claim: strictObject(
          { name: Type.String({ minLength: 1, description: 'Claim of the validated JWT; nested claims with dots, e.g. `org.id`. Lists are joined with `,`.' }) },
          'A JWT claim.',
        ),
      },
      'Count by a claim of the validated JWT (RequestAuthentication).',
    ),
    strictObject({ principal: emptyObject('Peer identity `<trustDomain>/ns/<ns>/sa/<sa>` of an mTLS client.') }, 'Count by mTLS peer principal.'),
    strictObject({ requestPrincipal: emptyObject('`<iss>/<sub>` of the validated JWT.') }, 'Count by JWT principal.'),
    strictObject({ route: emptyObject('Name of the matched route `<ns>/<virtualService>.<rule>`.') }, 'Count by route.'),
  ],
  { description: 'One part of the counting key; exactly one of remoteIp, header, claim, principal, requestPrincipal, route.' },
);
export type KeyPart = Static<typeof KeyPart>;

export const RequestMatch = strictObject(
  {
    hosts: Type.Optional(valueList('Host/:authority as received, port included; case-insensitive')),
    notHosts: Type.Optional(valueList('Hosts that must NOT match')),
    paths: Type.Optional(valueList('Normalised path without query string')),
    notPaths: Type.Optional(valueList('Paths that must NOT match')),
    methods: Type.Optional(valueList('HTTP method, case-sensitive')),
    notMethods: Type.Optional(valueList('Methods that must NOT match')),
    headers: Type.Optional(
      Type.Record(Type.String(), valueList('Values of this header (absent header never matches)'), {
        description: 'Request headers (name case-insensitive) and the value patterns each must match; all listed headers must match.',
      }),
    ),
  },
  'Which requests the rule counts; set fields are AND-ed. Absent or `{}`: every request.',
);
export type RequestMatch = Static<typeof RequestMatch>;

export const Limit = strictObject(
  {
    requests: Type.Integer({ minimum: 1, description: 'Requests (cost units) admitted per window and key. Required, at least 1.' }),
    per: durationString('Window length; a whole number of seconds, at least 1s (e.g. "1s", "1m", "1h").'),
    cost: Type.Optional(
      Type.Integer({ minimum: 1, default: DEFAULT_COST, description: 'Units one request consumes (default 1); must not exceed `requests`.' }),
    ),
    insuranceLimit: Type.Optional(
      Type.Integer({
        minimum: 1,
        description:
          'Only for `backend: redis` with `failureMode: open`: requests admitted per window and key BY EACH PROCESS while Redis is unreachable. Default: `requests`.',
      }),
    ),
  },
  'One fixed-window limit. Several limits on a rule are all enforced (e.g. 100 per 1s AND 5000 per 1h).',
);
export type Limit = Static<typeof Limit>;

export const RateLimitRule = strictObject(
  {
    match: Type.Optional(RequestMatch),
    key: Type.Optional(
      Type.Array(KeyPart, {
        description: 'What the limits count by; parts are combined. Absent or `[]`: one counter shared by every matching request.',
      }),
    ),
    missingKey: Type.Optional(
      stringEnum(
        ['bucket', 'skip'],
        'When a key part is absent on a request (no header, no JWT, plaintext peer, no route): `bucket` (default) counts all such requests in one shared "missing" bucket so omitting the part never escapes the limit; `skip` does not apply this rule to them.',
        DEFAULT_MISSING_KEY,
      ),
    ),
    limits: Type.Array(Limit, { minItems: 1, description: 'Limits enforced for matching requests, all of them. At least one.' }),
  },
  'A set of limits applied to the requests the rule matches. Every matching rule of every applicable policy is enforced.',
);
export type RateLimitRule = Static<typeof RateLimitRule>;

export const RateLimitResponse = strictObject(
  {
    headers: Type.Optional(
      Type.Boolean({
        default: false,
        description: 'Also send `RateLimit-Policy` / `RateLimit` on ADMITTED responses (default false). Limited responses always carry them and `Retry-After`.',
      }),
    ),
    status: Type.Optional(
      Type.Integer({ minimum: 400, maximum: 599, default: DEFAULT_LIMITED_STATUS, description: 'Status of a limited response (default 429).' }),
    ),
  },
  'How limited (and optionally admitted) responses look.',
);
export type RateLimitResponse = Static<typeof RateLimitResponse>;

export const RateLimitPolicySpec = strictObject(
  {
    selector: Type.Optional(
      described(
        WorkloadSelector,
        'Workloads the policy applies to; in the root namespace the policy is mesh-wide, elsewhere only its namespace. Absent: every workload in scope.',
      ),
    ),
    rules: Type.Array(RateLimitRule, { minItems: 1, description: 'Rules; at least one.' }),
    backend: Type.Optional(
      stringEnum(
        ['local', 'redis'],
        '`local` (default): counters in this process only. `redis`: counters shared by every process through MeshConfig `redis.url`.',
        DEFAULT_BACKEND,
      ),
    ),
    failureMode: Type.Optional(
      stringEnum(
        ['open', 'closed'],
        'Redis only — what happens while Redis is unreachable: `open` (default) enforces each limit\'s `insuranceLimit` per process; `closed` answers 503 (flag RLSE).',
        DEFAULT_FAILURE_MODE,
      ),
    ),
    response: Type.Optional(RateLimitResponse),
  },
  'Declarative rate limiting for the selected workloads.',
);
export type RateLimitPolicySpec = Static<typeof RateLimitPolicySpec>;
