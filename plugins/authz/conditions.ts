/**
 * `when` conditions (docs/policies.md#when-conditions). An unknown key makes the whole rule invalid, as Istio's code
 * does (its docs say "ignored"): silently dropping a condition would widen an ALLOW rule.
 */
import type { Condition } from '../../gateway/config/kinds/authorization-policy.js';
import { anyMatches, compileValuePattern } from '../../gateway/policy/value-match.js';
import type { ValueMatcher } from '../../gateway/policy/value-match.js';
import { ipField, valueField } from './field-matchers.js';
import type { FieldContext, FieldMatcher } from './field-matchers.js';
import type { AuthzRequest } from './request-view.js';

/** Claims whose string value is a space-separated list (OAuth `scope`, and `permission`). */
const SPACE_DELIMITED_CLAIMS = new Set(['scope', 'permission']);

function bracketPath(key: string, prefix: string): string[] | null {
  if (!key.startsWith(prefix)) return null;
  const rest = key.slice(prefix.length);
  const names: string[] = [];
  const segment = /\[([^[\]]+)\]/y;
  let position = 0;
  while (position < rest.length) {
    segment.lastIndex = position;
    const match = segment.exec(rest);
    if (match === null) return null;
    names.push(match[1] as string);
    position = segment.lastIndex;
  }
  return names.length === 0 ? null : names;
}

function claimValues(request: AuthzRequest, path: readonly string[]): string[] {
  let value: unknown = request.auth?.claims;
  for (const name of path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
    value = (value as Record<string, unknown>)[name];
  }
  if (typeof value === 'string') return path.length === 1 && SPACE_DELIMITED_CLAIMS.has(path[0] as string) ? value.split(' ').filter(Boolean) : [value];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return [];
}

function anyElementMatches(elements: readonly string[], matchers: readonly ValueMatcher[]): boolean {
  for (let i = 0; i < elements.length; i++) if (anyMatches(matchers, elements[i] as string)) return true;
  return false;
}

/** A list-valued attribute: `values` match if any element matches; `notValues` if no element does. */
function listField(
  description: string,
  condition: Condition,
  read: (request: AuthzRequest) => string[],
): FieldMatcher {
  const positive = condition.values?.map((pattern) => compileValuePattern(pattern)) ?? [];
  const negative = condition.notValues?.map((pattern) => compileValuePattern(pattern)) ?? [];
  return {
    description,
    matches: (request) => {
      const elements = read(request);
      return (condition.values === undefined || anyElementMatches(elements, positive)) && !anyElementMatches(elements, negative);
    },
  };
}

const PEER_KEYS: Readonly<Record<string, (request: AuthzRequest) => string>> = {
  'source.namespace': (r) => r.peer?.namespace ?? '',
  'source.principal': (r) => r.peer?.principal ?? '',
  'source.serviceAccount': (r) => (r.peer === null ? '' : `${r.peer.namespace}/${r.peer.serviceAccount}`),
  'source.trustDomain': (r) => r.peer?.trustDomain ?? '',
  'request.auth.principal': (r) => r.auth?.principal ?? '',
  'request.auth.presenter': (r) => {
    const azp = r.auth?.claims['azp'];
    return typeof azp === 'string' ? azp : '';
  },
  'connection.sni': (r) => r.sni,
};

const IP_KEYS: Readonly<Record<string, (request: AuthzRequest) => string>> = {
  'source.ip': (r) => r.sourceIp,
  'remote.ip': (r) => r.remoteIp,
  'destination.ip': (r) => r.destinationIp,
};

/** Returns null (and records a problem) when the key is not one Istio supports. */
export function compileCondition(context: FieldContext, condition: Condition): FieldMatcher | null {
  const { key, values, notValues } = condition;
  const label = `when ${key}`;
  if (values === undefined && notValues === undefined) {
    context.problems.push({ field: `${context.fieldPrefix}.values`, message: `${key}: one of values/notValues is required` });
    return null;
  }
  const ipRead = IP_KEYS[key];
  if (ipRead !== undefined) return ipField(context, label, values, notValues, ipRead, `${label} not`);
  const peerRead = PEER_KEYS[key];
  if (peerRead !== undefined) return valueField(context, label, values, notValues, peerRead);
  if (key === 'destination.port') {
    const ports = new Set(values?.map(Number));
    const notPorts = new Set(notValues?.map(Number));
    return {
      description: `${label} values=${JSON.stringify(values ?? [])} notValues=${JSON.stringify(notValues ?? [])}`,
      matches: (r) => (values === undefined || ports.has(r.destinationPort)) && !notPorts.has(r.destinationPort),
    };
  }
  if (key === 'request.auth.audiences') {
    return listField(`${label} ${JSON.stringify({ values, notValues })}`, condition, (r) => claimValues(r, ['aud']));
  }
  const headerName = bracketPath(key, 'request.headers');
  if (headerName !== null && headerName.length === 1) {
    const name = (headerName[0] as string).toLowerCase();
    const field = valueField(context, label, values, notValues, (r) => r.header(name) ?? '');
    // No value pattern accepts '' (empty patterns are refused), so `values` only ever match a header that was sent.
    return field !== null && values !== undefined && values.length > 0 ? { ...field, requiredHeader: name } : field;
  }
  const claimPath = bracketPath(key, 'request.auth.claims');
  if (claimPath !== null) {
    return listField(`${label} ${JSON.stringify({ values, notValues })}`, condition, (r) => claimValues(r, claimPath));
  }
  context.problems.push({ field: `${context.fieldPrefix}.key`, message: `unsupported condition key: ${key}` });
  return null;
}
