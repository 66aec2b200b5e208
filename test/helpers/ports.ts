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

/**
 * tap runs TAP_JOBS test files at once, each with its TAP_JOB_ID: each job walks its own slice of the
 * range, so two files running side by side can never pick the same port between one's probe and its
 * bind. Within the slice the start is random (runs in other checkouts on the same machine).
 */
function jobSlice(): { readonly first: number; readonly size: number } {
  const whole = ephemeralStart() - LOWEST_PORT;
  const jobs = Number(process.env['TAP_JOBS']);
  const job = Number(process.env['TAP_JOB_ID']);
  if (!Number.isInteger(jobs) || !Number.isInteger(job) || jobs < 1 || job < 0 || job >= jobs) return { first: LOWEST_PORT, size: whole };
  const size = Math.floor(whole / jobs);
  return { first: LOWEST_PORT + job * size, size };
}

const slice = jobSlice();
let cursor = Math.floor(Math.random() * slice.size);

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
    const port = slice.first + (cursor++ % slice.size);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${slice.first} and ${slice.first + slice.size} after 200 tries`);
}
