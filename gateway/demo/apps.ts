/**
 * The demo's applications. They are plain HTTP servers on loopback that know nothing of TLS, retries
 * or discovery: order-service reaches product-service, its state store and its pub/sub through its own
 * sidecar's Dapr API (`/v1.0/invoke/product-service/method/...`, `/v1.0/state/...`, `/v1.0/publish/...`),
 * as the seed's Go example does, and copies the request id and trace headers so the mesh can correlate
 * the hops.
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

interface SidecarAnswer {
  readonly status: number;
  readonly body: string;
}

/** One call to the app's own sidecar (its outbound port), as the Dapr SDK would make it. */
function callSidecar(sidecarOutbound: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<SidecarAnswer> {
  return new Promise((resolve, reject) => {
    const call = http.request(`${sidecarOutbound}${path}`, { method, headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' } }, (reply) => {
      let text = '';
      reply.setEncoding('utf8');
      reply.on('data', (chunk: string) => (text += chunk));
      reply.on('end', () => resolve({ status: reply.statusCode ?? 0, body: text.trim() }));
    });
    call.on('error', reject);
    call.end(body);
  });
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (text += chunk));
    request.on('end', () => resolve(text));
    request.on('error', reject);
  });
}

/** How many received `order-created` events the subscriber keeps for `GET /api/orders/events`. */
const KEPT_EVENTS = 20;

/**
 * order-service, the seed's Go example in TypeScript: for `GET /api/orders/<id>` it invokes
 * product-service, saves the order as `order-<id>` in `order-store` and publishes `order-created` on
 * `order-pubsub`, all through its sidecar; `GET /api/orders/<id>/saved` reads the order back from the
 * store. It is also the subscriber of `order-created` (the Subscription in config/demo routes it to
 * `POST /events/order-created`): the demo's broker is in memory, inside this app's sidecar, so the
 * event reaches an app behind the same sidecar, as with Dapr's pubsub.in-memory.
 * `GET /api/orders/events` lists the events received.
 */
export function orderApp(sidecarOutbound: string): http.Server {
  const received: unknown[] = [];
  const fail = (response: ServerResponse, what: string, answer: SidecarAnswer): void => sendJson(response, 502, { error: `${what} failed`, status: answer.status, body: answer.body });

  async function placeOrder(orderId: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const headers: Record<string, string> = {};
    for (const name of PROPAGATED) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const productId = `product-${orderId}`;
    const product = await callSidecar(sidecarOutbound, 'GET', `/v1.0/invoke/product-service/method/api/products/${productId}`, headers);
    if (product.status !== 200) return fail(response, 'product-service call', product);
    const details = JSON.parse(product.body) as { price: number };
    const order = { orderId, quantity: 2, total: details.price * 2, product: details };
    const saved = await callSidecar(sidecarOutbound, 'POST', '/v1.0/state/order-store', headers, JSON.stringify([{ key: `order-${orderId}`, value: order }]));
    if (saved.status !== 204) return fail(response, 'saving the order in order-store', saved);
    const published = await callSidecar(sidecarOutbound, 'POST', '/v1.0/publish/order-pubsub/order-created', headers, JSON.stringify({ orderId, total: order.total }));
    if (published.status !== 204) return fail(response, 'publishing order-created', published);
    sendJson(response, 200, { ...order, savedAs: `order-${orderId}`, published: 'order-pubsub/order-created' });
  }

  async function readOrder(orderId: string, response: ServerResponse): Promise<void> {
    const stored = await callSidecar(sidecarOutbound, 'GET', `/v1.0/state/order-store/order-${orderId}`, {});
    if (stored.status === 204) return sendJson(response, 404, { error: `order-${orderId} is not in order-store (GET /api/orders/${orderId} saves it)` });
    if (stored.status !== 200) return fail(response, 'reading order-store', stored);
    sendJson(response, 200, JSON.parse(stored.body) as unknown);
  }

  async function orderCreated(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const event = JSON.parse(await readBody(request)) as { id?: string; data?: unknown };
    received.push({ id: event.id, data: event.data, receivedAt: new Date().toISOString() });
    if (received.length > KEPT_EVENTS) received.shift();
    sendJson(response, 200, { status: 'SUCCESS' });
  }

  return http.createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = request.url ?? '/';
    const unreachable = (error: Error): void => sendJson(response, 502, { error: `cannot reach my sidecar: ${error.message}` });
    if (request.method === 'POST' && url === '/events/order-created') {
      orderCreated(request, response).catch((error: Error) => sendJson(response, 400, { status: 'DROP', error: error.message }));
      return;
    }
    request.resume();
    if (url === '/dapr/subscribe') return sendJson(response, 200, []);
    if (url === '/api/orders/events') return sendJson(response, 200, { received });
    const saved = /^\/api\/orders\/([\w-]+)\/saved$/.exec(url);
    if (saved !== null) return void readOrder(saved[1] as string, response).catch(unreachable);
    const order = /^\/api\/orders\/([\w-]+)$/.exec(url);
    if (order !== null) return void placeOrder(order[1] as string, request, response).catch(unreachable);
    if (url.startsWith('/health/')) return sendJson(response, 200, { status: 'ok', service: 'order-service' });
    sendJson(response, 404, { error: 'not found' });
  });
}
