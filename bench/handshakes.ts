/**
 * The handshake client: opens `--count` fresh mTLS connections (no keep-alive, nothing sent) to a
 * sidecar's inbound port with a valid mesh client certificate, `--concurrency` at a time, and prints
 * one JSON line `{ handshakes, failures, seconds, resumed }`. The client SecureContext is built once
 * (as a sidecar does). With `--resume`, each connection offers the latest TLS 1.3 session ticket the
 * client holds, so the server can skip certificate verification and the signatures.
 */
import { readFileSync } from 'node:fs';
import { connect, createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';

const CONNECT_TIMEOUT_MS = 5_000;
/** How long a resuming client waits for the server's ticket after the handshake before closing anyway. */
const TICKET_WAIT_MS = 200;

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    count: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '4' },
    resume: { type: 'boolean', default: false },
  },
});
const port = Number(values.port);
const count = Number(values.count);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(port) || !Number.isInteger(count) || count < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
  throw new Error('usage: handshakes --port P --ca F --cert F --key F [--count N] [--concurrency C] [--resume]');
}
const secureContext = createSecureContext({
  ca: readFileSync(String(values.ca)),
  cert: readFileSync(String(values.cert)),
  key: readFileSync(String(values.key)),
  minVersion: 'TLSv1.3',
});
let lastSession: Buffer | undefined;
let resumed = 0;
let failures = 0;

function handshakeOnce(): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      secureContext,
      // The sidecar's certificate names a SPIFFE identity, not 127.0.0.1; the chain is still verified.
      checkServerIdentity: () => undefined,
      ...(values.resume && lastSession !== undefined ? { session: lastSession } : {}),
    });
    let done = false;
    let secured = false;
    let ticketed = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!ok) failures += 1;
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(() => finish(false), CONNECT_TIMEOUT_MS);
    socket.once('error', () => finish(false));
    // Read, so that the ticket the server sends after the handshake is processed.
    socket.resume();
    socket.on('session', (session: Buffer) => {
      lastSession = session;
      ticketed = true;
      if (secured) finish(true);
    });
    socket.once('secureConnect', () => {
      secured = true;
      if (socket.isSessionReused()) resumed += 1;
      // A resuming client needs one ticket (TLS 1.3 sends it after the handshake); then it reuses that one,
      // so the run measures resumption rather than waiting for fresh tickets.
      if (!values.resume || ticketed || lastSession !== undefined) return finish(true);
      setTimeout(() => finish(true), TICKET_WAIT_MS).unref();
    });
  });
}

let started = 0;
async function worker(): Promise<void> {
  while (started < count) {
    started += 1;
    await handshakeOnce();
  }
}

const begin = process.hrtime.bigint();
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, () => worker()));
const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
process.stdout.write(`${JSON.stringify({ handshakes: count - failures, failures, seconds, resumed })}\n`);
