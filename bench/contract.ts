/**
 * What the driver and the processes it starts agree on: the upstream's fixed response and the
 * one-line JSON handshake (`{"ports":[...]}` on stdout) by which a child says it is listening.
 */
import type { AddressInfo } from 'node:net';

export const UPSTREAM_BODY = JSON.stringify({
  id: 42,
  name: 'bench items',
  price: 19.99,
  currency: 'EUR',
  inStock: true,
  tags: ['bench', 'upstream', 'json'],
  v: 1,
});

/** Set by the upstream on every response: the index of the listener that answered. */
export const LISTENER_HEADER = 'x-bench-listener';

export function readyLine(ports: readonly number[]): string {
  return `${JSON.stringify({ ports })}\n`;
}

/** Prints the ready line for a listening server, and exits once `close` has run on SIGTERM or SIGINT. */
export function announceAndStopOnSignal(server: { address(): AddressInfo | string | null }, close: () => Promise<unknown> | void): void {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('listener has no TCP address');
  process.stdout.write(readyLine([address.port]));
  const stop = (): void => {
    void Promise.resolve(close()).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

export function parseReadyLine(line: string): number[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || !('ports' in parsed)) return null;
  const { ports } = parsed;
  if (!Array.isArray(ports) || ports.length === 0) return null;
  const valid = ports.filter((port): port is number => Number.isInteger(port) && port > 0 && port < 65536);
  return valid.length === ports.length ? valid : null;
}
