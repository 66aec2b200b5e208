/**
 * What node and undici accept as a header value (RFC 9110 §5.5 field-value: HTAB, visible ASCII,
 * obs-text; never CR, LF, NUL or other controls). A value the proxy composes from request data (a JWT
 * claim) is checked with this before it is set, so it is refused with a 4xx and its reason instead of
 * making the upstream client throw (a 5xx).
 */
const INVALID_FIELD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

export function isValidHeaderValue(value: string): boolean {
  return !INVALID_FIELD_VALUE.test(value);
}
