/**
 * The parts of undici meshgate uses. The data path's two (Pool, buildConnector) are loaded from their
 * own files rather than undici's index: the index also loads fetch, WebSocket, EventSource, the cache
 * stores and the mock agents, ~3 MB of heap (~5 MB of RSS) that every proxy would hold without ever
 * using them. They are the very objects the index re-exports (same module instances), so undici's
 * types describe them exactly.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool, buildConnector as undiciBuildConnector, request as undiciIndexRequest } from 'undici';

const require = createRequire(import.meta.url);

export const Pool = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
export type Pool = UndiciPool;
export const buildConnector = require('undici/lib/core/connect.js') as typeof undiciBuildConnector;
/** What `buildConnector` returns: opens one connection (TCP or TLS) for a pool. */
export type Connector = undiciBuildConnector.connector;

type Request = typeof undiciIndexRequest;

let loadedRequest: Promise<Request> | null = null;

/**
 * undici's `request`, for the control-plane calls (a JWKS fetch, an ext_authz check). The index is
 * imported by the proxies whose config makes such calls (their clients start the import when they are
 * compiled), not by all at start. Callers arm their timeouts after this resolves: a call's deadline is
 * for the remote side, never for loading a module once.
 */
export function loadUndiciRequest(): Promise<Request> {
  loadedRequest ??= import('undici').then((undici) => undici.request);
  return loadedRequest;
}
