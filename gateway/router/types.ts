/**
 * The router's compiled forms (docs/routing.md). Everything here is built once per config
 * snapshot and never mutated; per request the core only calls the precompiled functions.
 */
import type { RetryPolicy } from './retry-policy.js';

export type NodeHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** What the router needs to know about a request, already normalised by gateway/http. */
export interface RouteRequest {
  readonly method: string;
  /** Host/:authority as received, lower-cased, port kept (the `authority` match sees the port). */
  readonly authority: string;
  /** Authority without port (virtual host selection ignores the port). */
  readonly host: string;
  /** Normalised path without the query string. */
  readonly path: string;
  /** Raw query string without '?', or ''. */
  readonly query: string;
  readonly scheme: 'http' | 'https';
  /** Port of the listener the request arrived on. */
  readonly port: number;
  /** node-style: lower-case keys, repeated headers as arrays or already comma-joined. */
  readonly headers: NodeHeaders;
  /** Validated JWT claims, for `@request.auth.claims.*` header matches. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** Mutable header bag of the upstream request or the downstream response (node `OutgoingHttpHeaders` shape). */
export type MutableHeaders = Record<string, string | string[] | number | undefined>;

export interface HeaderOps {
  /** False when there is nothing to do, so callers can skip the call. */
  readonly isEmpty: boolean;
  /** Removals first, then `set` (overwrite) and `add` (append) — Envoy's header parser order. */
  apply(headers: MutableHeaders): void;
}

export interface CompiledDestination {
  readonly host: string;
  readonly subset?: string;
  readonly port?: number;
  readonly requestHeaders: HeaderOps;
  readonly responseHeaders: HeaderOps;
  /** `host`/`:authority` set by this destination's request headers; wins over the route's rewrite. */
  readonly authorityRewrite: string | null;
}

export interface ForwardAction {
  readonly kind: 'forward';
  readonly destinations: readonly CompiledDestination[];
  /** `random` in [0, 1): weighted pick over relative weights (precomputed cumulative shares). */
  pick(random: number): CompiledDestination;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  /** 301 (default), 302, 303, 307 or 308. */
  readonly status: number;
  location(req: RouteRequest): string;
}

export interface DirectResponseAction {
  readonly kind: 'direct-response';
  readonly status: number;
  readonly body: Buffer;
}

export type RouteAction = ForwardAction | RedirectAction | DirectResponseAction;

export interface RouteRewrite {
  /** New `path[?query]` to send upstream, or null when the path is not rewritten. When non-null the caller
   * sends the original path in `x-envoy-original-path`. */
  readonly path: ((req: RouteRequest) => string | null) | null;
  /** Replacement Host/:authority (rewrite.authority or a `host`/`:authority` header set/add), or null. */
  readonly authority: string | null;
}

export interface CompiledFault {
  /** Probabilities in [0, 1]; a fault whose percentage was omitted has fraction 0 (never injected). */
  readonly delay: { readonly ms: number; readonly fraction: number } | null;
  readonly abort:
    | { readonly httpStatus: number; readonly fraction: number }
    | { readonly grpcStatus: string; readonly fraction: number }
    | null;
}

export interface CompiledMirror {
  readonly destination: { readonly host: string; readonly subset?: string; readonly port?: number };
  /** Share of requests mirrored, in [0, 1]. */
  readonly fraction: number;
}

/** What the CORS step decided for one request (docs/routing.md#cors). */
export type CorsDecision =
  /** Answer the preflight locally with status 200 and these headers; do not forward. */
  | { readonly kind: 'preflight'; readonly headers: Readonly<Record<string, string>> }
  /** Forward; add these headers to the response (empty when the origin does not match or there is no Origin). */
  | { readonly kind: 'forward'; readonly responseHeaders: Readonly<Record<string, string>> };

export interface CompiledCors {
  decide(req: RouteRequest): CorsDecision;
}

export interface VirtualServiceRef {
  readonly namespace: string;
  readonly name: string;
}

export interface CompiledRoute {
  /** `<ns>/<vs>.<rule name or index>[.<match name>]` */
  readonly name: string;
  readonly virtualService: VirtualServiceRef;
  readonly action: RouteAction;
  readonly rewrite: RouteRewrite;
  readonly requestHeaders: HeaderOps;
  readonly responseHeaders: HeaderOps;
  /** 0 = no route timeout (Istio's default). */
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly fault: CompiledFault | null;
  readonly mirrors: readonly CompiledMirror[];
  readonly cors: CompiledCors | null;
  /**
   * Upgrade tokens (lower case) this route attempts, from its VirtualService's `meshgate.dev/upgrades`
   * annotation; null = every token the listener offers (MeshConfig `connections.upgrades`).
   */
  readonly upgrades: readonly string[] | null;
}

export type NoRouteReason = 'no_virtual_host' | 'no_matching_route';

export type RouteMatchResult = { readonly route: CompiledRoute } | { readonly noRoute: NoRouteReason };

export interface RouteTable {
  match(req: RouteRequest): RouteMatchResult;
}
