/**
 * Stands in for the router and upstream steps in observability tests: by path, it picks a cluster and
 * host (as routing would) or answers locally with a response flag (as a failing step would).
 */
import fastifyPlugin from 'fastify-plugin';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';

export const DETAILS_CLUSTER = 'outbound|9080|v1|details.default.svc.cluster.local';
export const DETAILS_HOST = '10.0.0.5:9080';

export const scenarioPlugin: MeshPlugin<null> = {
  name: 'scenario',
  compile: () => null,
  register: fastifyPlugin(
    async (app) => {
      app.addHook('onRequest', async (request, reply) => {
        const mesh = request.mesh;
        const path = mesh.attrs.path;
        if (path.startsWith('/routed')) {
          mesh.routeName = 'default/details.0';
          mesh.upstreamCluster = DETAILS_CLUSTER;
          mesh.upstreamHost = DETAILS_HOST;
          reply.header('x-envoy-upstream-service-time', '7');
          mesh.upstreamServiceTimeMs = 7;
        } else if (path.startsWith('/inbound')) {
          mesh.upstreamCluster = 'inbound|8080||';
          mesh.upstreamHost = '127.0.0.1:8080';
        } else if (path.startsWith('/no-route')) {
          return sendLocalReply(request, reply, { status: 404, flag: 'NR', details: 'route_not_found', message: 'no route' });
        } else if (path.startsWith('/overflow')) {
          mesh.upstreamCluster = DETAILS_CLUSTER;
          return sendLocalReply(request, reply, { status: 503, flag: 'UO', details: 'upstream_overflow', message: 'overflow' });
        } else if (path.startsWith('/grpc')) {
          mesh.upstreamCluster = DETAILS_CLUSTER;
          return sendLocalReply(request, reply, { status: 200, flag: '', details: 'grpc_unavailable', message: '' }, { 'grpc-status': '14' });
        }
        return undefined;
      });
    },
    { name: 'scenario' },
  ),
};
