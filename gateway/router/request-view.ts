/**
 * A per-request view shared by all match predicates of one table lookup, so that work several
 * predicates need (joining repeated headers, parsing the query string) happens at most once.
 */
import type { RouteRequest } from './types.js';

export class RequestView {
  private queryParams: Map<string, string> | null = null;
  private fullPath: string | null = null;

  constructor(readonly req: RouteRequest) {}

  /** Header value; repeated headers compared as their comma-joined value. */
  header(name: string): string | undefined {
    const value = this.req.headers[name];
    return Array.isArray(value) ? value.join(',') : value;
  }

  get pathWithQuery(): string {
    this.fullPath ??= this.req.query === '' ? this.req.path : `${this.req.path}?${this.req.query}`;
    return this.fullPath;
  }

  /** First occurrence of a query parameter; `?key` and `?key=` both give ''. */
  queryParam(name: string): string | undefined {
    this.queryParams ??= parseQuery(this.req.query);
    return this.queryParams.get(name);
  }
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function parseQuery(query: string): Map<string, string> {
  const params = new Map<string, string>();
  if (query === '') return params;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    const key = decode(equals === -1 ? pair : pair.slice(0, equals));
    if (!params.has(key)) params.set(key, equals === -1 ? '' : decode(pair.slice(equals + 1)));
  }
  return params;
}
