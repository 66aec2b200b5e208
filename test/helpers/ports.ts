/**
 * Ports for test listeners that stay free until the test binds them. A port the kernel picked for
 * `listen(0)` and released can be handed out again at any moment, by the kernel, as the source port of
 * any outgoing connection or to another test's `listen(0)`; ports below the ephemeral range never are.
 * So each test process walks that lower range from its own random start and skips ports something
 * already listens on (system services live there too).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const LOWEST_PORT = 10_000;
/** Linux's default start of the ephemeral range, when /proc does not say. */
const DEFAULT_EPHEMERAL_START = 32_768;

function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const port = Number(low);
    return Number.isInteger(port) && port > LOWEST_PORT + 1_000 ? port : DEFAULT_EPHEMERAL_START;
  } catch {
    return DEFAULT_EPHEMERAL_START;
  }
}

const rangeSize = ephemeralStart() - LOWEST_PORT;
let cursor = Math.floor(Math.random() * rangeSize);

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 that no one listens on and that the kernel will not hand out by itself. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST_PORT + (cursor++ % rangeSize);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${LOWEST_PORT} and ${LOWEST_PORT + rangeSize} after 200 tries`);
}
