/**
 * Holds a broker connection's socket writes until the end of the event-loop turn, so the publishes
 * of one turn leave in one write. Each publish arrives in a tick of its own (its own HTTP request's
 * read), so a client library's per-tick batching (ioredis' auto-pipelining, amqplib's muxer) still
 * wrote once per message. The socket is uncorked from an immediate queued in a nextTick: after
 * writes the library itself queues that way (amqplib writes from an immediate its muxer queues in a
 * nextTick). Writes that come later still go out, one by one, as without the cork.
 */
import type { Writable } from 'node:stream';

export class TurnWrites {
  private held: Writable | null = null;

  /** Corks `socket` until the turn ends, unless a socket is already held this turn. */
  hold(socket: Writable): void {
    if (this.held !== null) return;
    socket.cork();
    this.held = socket;
    process.nextTick(this.releaseAfterQueuedWrites);
  }

  private readonly releaseAfterQueuedWrites = (): void => {
    setImmediate(this.release);
  };

  private readonly release = (): void => {
    this.held?.uncork();
    this.held = null;
  };
}
