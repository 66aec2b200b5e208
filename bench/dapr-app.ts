/**
 * The lean subscribing app of the Dapr pub/sub throughput runs, when wrk publishes (dapr-bench.ts,
 * bench/dapr-publish.lua): a plain TCP server that frames sidecar B's deliveries itself (dapr-delivery.ts),
 * records each event's id in the ledger and answers SUCCESS with one prepared buffer per request, so the
 * app costs the machine a few µs per event where node:http's server cost tens.
 *
 * Before the window it probes through sidecar A until one event makes the whole trip (the subscriber
 * is ready); then it follows the window protocol of dapr-delivery.ts and prints a ThroughputReport.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { DELIVERED_LINE, DeliveryLedger, READY_LINE, RequestFramer, announce, eventOf, throughputReport, whenDelivered } from './dapr-delivery.js';

const { values } = parseArgs({
  options: {
    'app-port': { type: 'string' },
    'sidecar-port': { type: 'string' },
    pubsub: { type: 'string', default: 'events' },
    topic: { type: 'string', default: 'bench' },
    run: { type: 'string' },
    first: { type: 'string', default: '1' },
    messages: { type: 'string' },
    'deadline-seconds': { type: 'string', default: '120' },
    'stall-seconds': { type: 'string', default: '10' },
  },
});

const runId = values.run ?? '';
const ledger = new DeliveryLedger(Number(values.first), Number(values.messages));
const SUCCESS = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{"status":"SUCCESS"}');
const NO_SUBSCRIPTIONS = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]');

let probeArrived = false;
let onArrival: () => void = () => undefined;

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  const framer = new RequestFramer();
  socket.on('data', (chunk: Buffer) => {
    const answers: Buffer[] = [];
    for (const { path, body } of framer.push(chunk)) {
      if (path.startsWith('/dapr/subscribe')) {
        answers.push(NO_SUBSCRIPTIONS);
        continue;
      }
      answers.push(SUCCESS);
      const event = eventOf(body);
      // Events of other runs (redelivered) are acked, not counted; probes carry ids ≤ 0.
      if (event === null || event.run !== runId) continue;
      if (event.n <= 0) probeArrived = true;
      else if (ledger.record(event.n)) onArrival();
    }
    // One write per chunk, however many deliveries it held.
    if (answers.length > 0) socket.write(answers.length === 1 ? (answers[0] as Buffer) : Buffer.concat(answers));
  });
  socket.on('error', () => socket.destroy());
});
await new Promise<void>((resolve) => server.listen(Number(values['app-port']), '127.0.0.1', resolve));

const publishPath = `http://127.0.0.1:${values['sidecar-port'] ?? ''}/v1.0/publish/${values.pubsub ?? ''}/${values.topic ?? ''}`;
const PROBE_WAIT_MS = 200;
for (let probe = 0; !probeArrived; probe--) {
  const response = await request(publishPath, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run: runId, n: probe }) });
  const text = await response.body.text();
  if (response.statusCode !== 204) throw new Error(`probe publish answered ${response.statusCode}: ${text}`);
  const until = Date.now() + PROBE_WAIT_MS;
  while (!probeArrived && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
}

await announce(READY_LINE);
const started = performance.now();
const waiter = whenDelivered(ledger, Number(values['deadline-seconds']) * 1000, Number(values['stall-seconds']) * 1000);
onArrival = () => waiter.arrived();
await waiter.done;
const seconds = (performance.now() - started) / 1000;
await announce(DELIVERED_LINE);
process.stdout.write(`${JSON.stringify(throughputReport(ledger, seconds))}\n`, () => process.exit(0));
