/**
 * The demo's applications. They are plain HTTP servers on loopback that know nothing of TLS, retries
 * or discovery: order-service calls product-service through its own sidecar with a Dapr-style
 * invocation (`/v1.0/invoke/product-service/method/...`), as the seed's Go example does, and copies
 * the request id and trace headers so the mesh can correlate the hops.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';

const PROPAGATED = ['x-request-id', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-canary'];

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(`${JSON.stringify(body)}\n`);
}

export function productApp(version: string): http.Server {
  return http.createServer((request: IncomingMessage, response: ServerResponse) => {
    request.resume();
    const url = request.url ?? '/';
    const product = /^\/api\/products\/([\w-]+)$/.exec(url);
    if (product !== null) {
      const id = product[1] as string;
      return sendJson(response, 200, { id, name: `Product ${id}`, price: 19.99, version, servedBy: `product-service ${version}` });
    }
    if (url.startsWith('/health/')) return sendJson(response, 200, { status: 'ok', service: 'product-service', version, identity: request.headers['x-forwarded-client-cert'] ?? null });
    sendJson(response, 404, { error: 'not found' });
  });
}

export function orderApp(sidecarOutbound: string): http.Server {
  return http.createServer((request: IncomingMessage, response: ServerResponse) => {
    request.resume();
    const order = /^\/api\/orders\/([\w-]+)$/.exec(request.url ?? '/');
    if (order === null) {
      if ((request.url ?? '').startsWith('/health/')) return sendJson(response, 200, { status: 'ok', service: 'order-service' });
      return sendJson(response, 404, { error: 'not found' });
    }
    const headers: Record<string, string> = {};
    for (const name of PROPAGATED) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const productId = `product-${order[1] as string}`;
    const call = http.get(`${sidecarOutbound}/v1.0/invoke/product-service/method/api/products/${productId}`, { headers }, (reply) => {
      let body = '';
      reply.setEncoding('utf8');
      reply.on('data', (chunk: string) => (body += chunk));
      reply.on('end', () => {
        if (reply.statusCode !== 200) return sendJson(response, 502, { error: 'product-service call failed', status: reply.statusCode, body: body.trim() });
        const product = JSON.parse(body) as { price: number };
        sendJson(response, 200, { orderId: order[1], quantity: 2, total: product.price * 2, product });
      });
    });
    call.on('error', (error) => sendJson(response, 502, { error: `cannot reach my sidecar: ${error.message}` }));
  });
}
