import t from 'tap';
import type * as Amqp from 'amqplib';
import { ChannelAcks } from '../../gateway/dapr/pubsub/rabbitmq-acks.js';
import { oldGenerationGrowthPerTurn } from '../helpers/old-generation.js';

function delivery(tag: number): Amqp.ConsumeMessage {
  return { fields: { deliveryTag: tag } } as Amqp.ConsumeMessage;
}

t.test('settled deliveries below the oldest unsettled one go as one multiple ack, the others one by one', async (t) => {
  const sent: string[] = [];
  const channel = {
    ack: (message: Amqp.ConsumeMessage, allUpTo = false) => sent.push(`ack ${message.fields.deliveryTag}${allUpTo ? ' and all before' : ''}`),
    nack: (message: Amqp.ConsumeMessage, _allUpTo: boolean, requeue: boolean) => sent.push(`nack ${message.fields.deliveryTag}${requeue ? ' requeued' : ''}`),
  } as unknown as Amqp.Channel;
  const acks = new ChannelAcks(channel, 100);
  const deliveries = [1, 2, 3, 4, 5, 6].map(delivery);
  for (const each of deliveries) acks.delivered(each);
  const [first, second, third, fourth, fifth, sixth] = deliveries as [Amqp.ConsumeMessage, Amqp.ConsumeMessage, Amqp.ConsumeMessage, Amqp.ConsumeMessage, Amqp.ConsumeMessage, Amqp.ConsumeMessage];
  // 4 is still being handled: 1-3 go as one ack, 5 alone.
  acks.ack(second);
  acks.ack(first);
  acks.ack(third);
  acks.ack(fifth);
  acks.flush();
  t.same(sent, ['ack 5', 'ack 3 and all before']);
  acks.nack(fourth, true);
  acks.ack(sixth);
  acks.flush();
  t.same(sent, ['ack 5', 'ack 3 and all before', 'nack 4 requeued', 'ack 6 and all before'], 'a nacked delivery no longer holds the others back');
});

t.test('a delivery a turn leaves nothing for the old generation', async (t) => {
  // A Set of the unsettled tags, added to and deleted from on every delivery, left ~130 bytes a delivery there.
  const module = new URL('../../gateway/dapr/pubsub/rabbitmq-acks.js', import.meta.url).href;
  const { baseline, acting } = await oldGenerationGrowthPerTurn(
    module,
    'return { acks: new subject.ChannelAcks({ ack() {}, nack() {} }, 100), tag: 0 };',
    'const delivery = { fields: { deliveryTag: ++context.tag } }; context.acks.delivered(delivery); context.acks.ack(delivery); context.acks.flush();',
  );
  t.ok(acting - baseline < 40, `the old generation grew ${acting.toFixed(1)} bytes a turn with a delivery each turn, ${baseline.toFixed(1)} without (at most 40 more)`);
});
