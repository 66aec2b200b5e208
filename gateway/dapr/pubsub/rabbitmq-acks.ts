import type * as Amqp from 'amqplib';
import { AckWindow } from './ack-window.js';
import { removeItem } from './broker.js';

/**
 * The acks of one channel. Deliveries settled in one window (AckWindow) are acked together: the tags
 * below the oldest delivery still being handled as ONE `multiple` ack (one frame and one write instead
 * of one each), the others one by one, so a slow delivery never holds back the acks of those after it
 * (unacked messages count against the prefetch window, which is why a batch leaves at half of it).
 * Nothing is acked before its handler said `ack`: a multiple ack only covers tags that are settled.
 */
export class ChannelAcks {
  /** Delivered and not yet settled, oldest first (tags only grow on a channel; an array: see removeItem). */
  private readonly unsettled: number[] = [];
  private readonly window: AckWindow<Amqp.ConsumeMessage>;

  constructor(
    private readonly channel: Amqp.Channel,
    prefetchCount: number,
  ) {
    this.window = new AckWindow(this.send, Math.max(1, Math.floor(prefetchCount / 2)));
  }

  delivered(delivery: Amqp.ConsumeMessage): void {
    this.unsettled.push(delivery.fields.deliveryTag);
  }

  ack(delivery: Amqp.ConsumeMessage): void {
    this.window.add(delivery);
  }

  nack(delivery: Amqp.ConsumeMessage, requeue: boolean): void {
    removeItem(this.unsettled, delivery.fields.deliveryTag);
    this.channel.nack(delivery, false, requeue);
  }

  /** Sends the acks waiting for the window now (before the channel closes). */
  flush(): void {
    this.window.flush();
  }

  private readonly send = (ready: Amqp.ConsumeMessage[]): void => {
    for (const delivery of ready) removeItem(this.unsettled, delivery.fields.deliveryTag);
    const oldestUnsettled = this.unsettled[0] ?? Number.POSITIVE_INFINITY;
    let upTo: Amqp.ConsumeMessage | null = null;
    try {
      for (const delivery of ready) {
        const tag = delivery.fields.deliveryTag;
        if (tag > oldestUnsettled) this.channel.ack(delivery);
        else if (upTo === null || tag > upTo.fields.deliveryTag) upTo = delivery;
      }
      if (upTo !== null) this.channel.ack(upTo, true);
    } catch {
      // The channel closed meanwhile: the broker has already put its unacked messages back in the queue.
    }
  };
}
