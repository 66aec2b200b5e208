/**
 * `pubsub.in-memory`: topics inside this process, for trying things on a laptop and for tests. Each
 * consumer group gets every message once, spread round-robin over the group's subscribers. A `nack`
 * puts the message back after `redeliverInterval` (default 1s). Nothing survives a restart.
 */
import type { FastifyBaseLogger } from 'fastify';
import { CLOSE_DRAIN_MS, metadataDurationMs, removeItem, settledWithin } from './broker.js';
import type { BrokerMessage, BrokerSubscription, MessageHandler, PubSubBroker, SubscribeOptions } from './broker.js';

const DEFAULT_REDELIVER_INTERVAL_MS = 1000;

interface Member {
  readonly handler: MessageHandler;
}

interface Group {
  readonly members: Member[];
  next: number;
}

export class InMemoryBroker implements PubSubBroker {
  readonly capabilities: readonly string[] = [];
  private readonly topics = new Map<string, Map<string, Group>>();
  private readonly redeliverIntervalMs: number;
  private readonly pending: Promise<void>[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private sequence = 0;
  private closed = false;

  constructor(
    metadata: Readonly<Record<string, string>>,
    private readonly logger: FastifyBaseLogger,
  ) {
    this.redeliverIntervalMs = metadataDurationMs(metadata, 'redeliverInterval', DEFAULT_REDELIVER_INTERVAL_MS);
  }

  async publish(topic: string, data: Buffer, metadata: Readonly<Record<string, string>>): Promise<void> {
    if (this.closed) throw new Error('the in-memory broker is closed');
    const groups = this.topics.get(topic);
    if (groups === undefined) return;
    const message: BrokerMessage = { brokerId: String(++this.sequence), data, metadata: { ...metadata } };
    for (const group of groups.values()) this.deliver(topic, group, message);
  }

  private deliver(topic: string, group: Group, message: BrokerMessage): void {
    if (this.closed || group.members.length === 0) return;
    const member = group.members[group.next++ % group.members.length];
    if (member === undefined) return;
    const delivery = member
      .handler(message)
      .catch((error: unknown) => {
        this.logger.error({ topic, id: message.brokerId, err: (error as Error).message }, 'pubsub.in-memory: handler failed');
        return 'nack' as const;
      })
      .then((verdict) => {
        if (verdict === 'ack' || this.closed) return;
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.deliver(topic, group, message);
        }, this.redeliverIntervalMs);
        this.timers.add(timer);
      });
    this.pending.push(delivery);
    void delivery.finally(() => removeItem(this.pending, delivery));
  }

  async subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<BrokerSubscription> {
    let groups = this.topics.get(options.topic);
    if (groups === undefined) this.topics.set(options.topic, (groups = new Map()));
    let group = groups.get(options.consumerGroup);
    if (group === undefined) groups.set(options.consumerGroup, (group = { members: [], next: 0 }));
    const member: Member = { handler };
    group.members.push(member);
    const owner = group;
    return {
      close: async () => {
        const index = owner.members.indexOf(member);
        if (index !== -1) owner.members.splice(index, 1);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await settledWithin(Promise.all(this.pending), CLOSE_DRAIN_MS);
    this.topics.clear();
  }
}
