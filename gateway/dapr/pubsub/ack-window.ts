/**
 * Acks gathered for a short window and sent together. Batching per event-loop turn was not enough:
 * a subscribing sidecar reads the app's answers one or two per turn (each on its own connection, as
 * the app writes them), so an XACK carried about three acks at 2 500 msg/s, each batch with a write and
 * a reply to read — as much CPU as the deliveries' own writes. An ack only ever leaves later, never earlier, so
 * nothing is acked before the app answered; what a crash inside the window loses is a redelivery, as
 * at-least-once allows.
 */

/** How long the first ack of a batch waits for others. */
export const ACK_WINDOW_MS = 5;

export class AckWindow<T> {
  private batch: T[] = [];
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param send called with every item gathered, oldest first, never with none
   * @param maxBatch sends at once when this many are waiting (a broker's unacked window is bounded)
   */
  constructor(
    private readonly send: (items: T[]) => void,
    private readonly maxBatch: number,
  ) {}

  add(item: T): void {
    this.batch.push(item);
    if (this.batch.length >= this.maxBatch) this.flush();
    else this.timer ??= setTimeout(this.flush, ACK_WINDOW_MS);
  }

  /** Whether `item` is gathered and not sent yet. */
  includes(item: T): boolean {
    return this.batch.includes(item);
  }

  /** Sends what is waiting now (also before a channel or connection closes). */
  readonly flush = (): void => {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const items = this.batch;
    if (items.length === 0) return;
    this.batch = [];
    this.send(items);
  };
}
