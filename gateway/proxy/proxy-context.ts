/**
 * The core's view of a request: the shared RequestContext plus what only the core needs — the snapshot
 * the request started on (so a reload never changes rules under it) and the routing outcome.
 */
import type { DaprRequestContext } from '../dapr/api/request.js';
import type { ListenerSpec } from '../listeners/listener-spec.js';
import { MeshRequestContext } from '../pipeline/context.js';
import type { RequestAttributes } from '../pipeline/types.js';
import type { RouteRequest, NoRouteReason } from '../router/types.js';
import type { Snapshot } from '../snapshot/snapshot.js';

export class ProxyRequestContext extends MeshRequestContext implements DaprRequestContext {
  noRoute: NoRouteReason | null = null;
  routeRequest: RouteRequest | null = null;

  constructor(
    readonly snapshot: Snapshot,
    readonly listener: ListenerSpec,
    attrs: RequestAttributes,
    requestId: string,
  ) {
    super(snapshot.generation, snapshot.mesh.debugHeaders, attrs, requestId, snapshot.pluginStates);
  }
}
