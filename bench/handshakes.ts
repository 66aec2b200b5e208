/**
 * The handshake client: opens `--count` fresh mTLS connections (no keep-alive, nothing sent) to a
 * sidecar's inbound port with a valid mesh client certificate, `--concurrency` at a time, and prints
 * one JSON line `{ handshakes, failures, seconds, resumed }`. The client SecureContext is built once
 * (as a sidecar does). With `--resume`, each connection offers the latest TLS 1.3 session ticket the
 * client holds, so the server can skip certificate verification and the signatures.
 *
 * At `secureConnect` the client closes cleanly (end, not destroy: destroying there drops the client's
 * last flight before it is written, so the server only ever saw half a handshake, never checked the
 * client's certificate and logged a hang-up). A handshake counts when the server then closes its side
 * too, having read the client's Finished first. A TLS 1.3 client cannot tell from that close whether
 * the server accepted its certificate, so one request before the timed run must get an HTTP answer:
 * the server refuses an identity by closing without one.
 */
import { readFileSync } from 'node:fs';
import { connect, createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';

const CONNECT_TIMEOUT_MS = 5_000;

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
/** The identity is accepted when a request over a fresh connection gets any HTTP answer (the app's status does not matter). */
function identityAccepted(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, secureContext, checkServerIdentity: () => undefined });
    let answer = '';
    const settle = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer.startsWith('HTTP/1.1 '));
    };
    const timer = setTimeout(settle, CONNECT_TIMEOUT_MS);
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: handshake-probe\r\nconnection: close\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.once('error', settle);
    socket.once('close', settle);
  });
}

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
    let secured = false;
    let completed = false;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!completed) failures += 1;
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(settle, CONNECT_TIMEOUT_MS);
    socket.once('error', settle);
    socket.once('close', settle);
    // Read, so that tickets and the server's close are seen.
    socket.resume();
    socket.on('session', (session: Buffer) => {
      lastSession = session;
    });
    socket.once('secureConnect', () => {
      secured = true;
      if (socket.isSessionReused()) resumed += 1;
      socket.end();
    });
    socket.once('end', () => {
      completed = secured;
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

if (!(await identityAccepted())) throw new Error(`the server on port ${port} did not answer a request over mTLS: is the client certificate accepted?`);
const begin = process.hrtime.bigint();
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, () => worker()));
const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
process.stdout.write(`${JSON.stringify({ handshakes: count - failures, failures, seconds, resumed })}\n`);
