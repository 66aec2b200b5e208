/**
 * The per-request context (`request.mesh`). A class rather than an object literal so every request
 * gets the same hidden class: this object is created once per request on the hot path.
 */
import type { FastifyReply } from 'fastify';
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import type { CompiledRoute } from '../router/types.js';
import type { DownstreamBytes, HopTrace, JwtAuthResult, LocalReply, RequestAttributes, RequestContext } from './types.js';

export class MeshRequestContext implements RequestContext {
  requestId: string;
  routeName = '';
  route: CompiledRoute | null = null;
  auth: JwtAuthResult | null = null;
  localReply: LocalReply | null = null;
  readonly responseFlags: string[] = [];
  upstreamCluster = '';
  upstreamHost = '';
  upstreamServiceTimeMs: number | null = null;
  responseHeaderEdits: Record<string, string> | null = null;
  relayedHeaders: Readonly<OutgoingHttpHeaders> | null = null;
  trace: HopTrace | null = null;
  downstreamBytes: DownstreamBytes | null = null;
  /** performance.now() when the request arrived: a double, so a duration costs no BigInt allocation. */
  readonly startMs: number;
  responseEndMs = NaN;

  constructor(
    readonly snapshotGeneration: number,
    readonly debugHeaders: boolean,
    readonly attrs: RequestAttributes,
    requestId: string,
    private readonly pluginStates: ReadonlyMap<string, unknown>,
  ) {
    this.requestId = requestId;
    this.startMs = performance.now();
  }

  pluginState<T>(pluginName: string): T {
    return this.pluginStates.get(pluginName) as T;
  }

  responseHeader(reply: FastifyReply, name: string): OutgoingHttpHeader | undefined {
    return this.relayedHeaders === null ? reply.getHeader(name) : this.relayedHeaders[name];
  }
}
