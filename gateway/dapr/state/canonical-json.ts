/**
 * The bytes Dapr stores for a value: Dapr decodes the request's `value` and the component encodes it
 * again with Go's encoding/json, which writes object keys sorted. The same value saved through daprd
 * or meshgate is then the same bytes in Redis.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const fields = Object.keys(record)
    .sort()
    .filter((key) => record[key] !== undefined)
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${fields.join(',')}}`;
}
