/**
 * Node's `rawHeaders` keep each header as the client sent it (repeats included, names in any case),
 * which is where duplicate Host or Authorization headers and repeated values must be read.
 */

/** Whether a raw header name is `lowerName`; the length check comes first, so other names cost no lower-casing (an allocation). */
export function isRawHeaderName(rawName: string, lowerName: string): boolean {
  return rawName.length === lowerName.length && rawName.toLowerCase() === lowerName;
}
