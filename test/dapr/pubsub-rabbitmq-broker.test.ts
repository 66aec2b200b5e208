/**
 * `pubsub.rabbitmq` against the machine's RabbitMQ (MESHGATE_TEST_AMQP_URL): Dapr's names (exchange =
 * topic, queue `<consumerID>-<topic>`), confirmed publishes, ack only after the handler, requeue on
 * nack, the dead-letter exchange, and the older `host` metadata. Every exchange and queue is unique to
 * this run and deleted afterwards. Fails (never skips) when RabbitMQ is unreachable.
 */
import t from 'tap';
import { pino } from 'pino';
import { RabbitMqBroker, rabbitMqSettings } from '../../gateway/dapr/pubsub/rabbitmq.js';
import type { BrokerMessage, HandlerVerdict } from '../../gateway/dapr/pubsub/broker.js';
import { connectTestAmqp, deleteAmqpNames, TEST_AMQP_URL, uniqueAmqpName } from '../helpers/amqp.js';

const silent = pino({ level: 'silent' });
const admin = await connectTestAmqp();
const declared = { queues: [] as string[], exchanges: [] as string[] };
t.teardown(async () => {
  await deleteAmqpNames(admin, declared);
  await admin.close();
});

function broker(extra: Record<string, string> = {}): RabbitMqBroker {
  const created = new RabbitMqBroker(rabbitMqSettings({ connectionString: TEST_AMQP_URL, ...extra }), silent);
  t.teardown(() => created.close());
  return created;
}

function names(label: string, group: string): { topic: string; queue: string } {
  const topic = uniqueAmqpName(label);
  const queue = `${group}-${topic}`;
  declared.exchanges.push(topic, `dlx-${queue}`);
  declared.queues.push(queue, `dlq-${queue}`);
  return { topic, queue };
}

async function until(what: string, condition: () => boolean | Promise<boolean>, deadlineMs = 60_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Messages ready in `queue`; rejects when it does not exist (the broker then closes the channel). */
async function queueDepth(queue: string): Promise<number> {
  const channel = await admin.createChannel();
  channel.on('error', () => {});
  const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await channel.close().catch(() => undefined);
    await closed;
  }
}

t.test('metadata: connectionString, or host as older Dapr wrote it, or hostname parts', async (t) => {
  t.equal(rabbitMqSettings({ host: 'amqp://u:p@127.0.0.1:5672' }).url, 'amqp://u:p@127.0.0.1:5672');
  t.equal(rabbitMqSettings({ hostname: 'mq:5673', username: 'a b', password: 'p@ss' }).url, 'amqp://a%20b:p%40ss@mq:5673');
  t.throws(() => rabbitMqSettings({}), /connectionString/);
  t.throws(() => rabbitMqSettings({ connectionString: 'http://x' }), /connectionString/);
  t.throws(() => rabbitMqSettings({ host: 'amqp://x', exchangeKind: 'weird' }), /exchangeKind/);
  t.notMatch(
    (() => {
      try {
        rabbitMqSettings({ host: 'redis://user:secret@x' });
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    })(),
    /secret/,
    'the password never reaches a message',
  );
});

t.test('publish → exchange named after the topic → the group queue; data and metadata arrive; the ack empties the queue', async (t) => {
  const { topic, queue } = names('basic', 'app-a');
  const pubsub = broker();
  const received: BrokerMessage[] = [];
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    received.push(message);
    return 'ack';
  });
  await until('the queue', async () => (await queueDepth(queue).catch(() => -1)) === 0);
  await pubsub.publish(topic, Buffer.from('{"n":1}'), { source: 'test' });
  await until('delivery', () => received.length === 1);
  t.equal(received[0]?.data.toString(), '{"n":1}');
  t.equal(received[0]?.metadata['source'], 'test');
  await until('the ack', async () => (await queueDepth(queue)) === 0);
});

t.test('the publishes of one event-loop turn leave in one socket write, and every one is confirmed and delivered', async (t) => {
  const { topic, queue } = names('one-write', 'app-a');
  // Publisher and subscriber on connections of their own: the subscriber's acks are writes too.
  const pubsub = broker();
  const received = new Set<string>();
  await broker().subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    received.add(message.data.toString());
    return 'ack';
  });
  await until('the queue', async () => (await queueDepth(queue).catch(() => -1)) === 0);
  await pubsub.publish(topic, Buffer.from('first'), {});
  // amqplib's socket (its Connection's `stream`): counted at the syscall-facing methods.
  const socket = (await pubsub.connection()).connection as unknown as { stream: { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void } };
  const counts = { write: 0, writev: 0 };
  const [write, writev] = [socket.stream._write.bind(socket.stream), socket.stream._writev.bind(socket.stream)];
  socket.stream._write = (...args) => {
    counts.write++;
    write(...args);
  };
  socket.stream._writev = (...args) => {
    counts.writev++;
    writev(...args);
  };
  await Promise.all(Array.from({ length: 50 }, (_, n) => pubsub.publish(topic, Buffer.from(String(n)), {})));
  t.equal(counts.writev, 1, '50 publishes, one write');
  t.ok(counts.write <= 1, 'no write of its own for any publish (a heartbeat may fall outside the turn)');
  await until('every delivery', () => received.size === 51);
  await until('the acks', async () => (await queueDepth(queue)) === 0);
});

t.test('two apps each get a copy; two replicas of one app share', async (t) => {
  const { topic } = names('fanout', 'app-a');
  declared.queues.push(`app-b-${topic}`);
  const pubsub = broker();
  const seen = { a: [] as string[], b: [] as string[] };
  const handler = (into: string[]) => async (message: BrokerMessage): Promise<HandlerVerdict> => {
    into.push(message.data.toString());
    return 'ack';
  };
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, handler(seen.a));
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, handler(seen.a));
  await pubsub.subscribe({ topic, consumerGroup: 'app-b', metadata: {} }, handler(seen.b));
  await until('queues bound', async () => (await queueDepth(`app-b-${topic}`).catch(() => -1)) === 0 && (await queueDepth(`app-a-${topic}`).catch(() => -1)) === 0);
  for (let i = 0; i < 20; i++) await pubsub.publish(topic, Buffer.from(String(i)), {});
  await until('deliveries', () => seen.a.length === 20 && seen.b.length === 20);
  t.same([...seen.a].sort((x, y) => Number(x) - Number(y)), Array.from({ length: 20 }, (_, i) => String(i)), 'each message once within app-a');
});

t.test('a nack requeues; nothing is acked before the handler says so', async () => {
  const { topic, queue } = names('requeue', 'app-a');
  const pubsub = broker();
  let calls = 0;
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async () => (++calls < 3 ? 'nack' : 'ack'));
  await until('the queue', async () => (await queueDepth(queue).catch(() => -1)) === 0);
  await pubsub.publish(topic, Buffer.from('x'), {});
  await until('three deliveries', () => calls === 3);
  await until('the ack', async () => (await queueDepth(queue)) === 0);
});

t.test('with enableDeadLetter a nack goes to dlq-<queue>', async () => {
  const { topic, queue } = names('dlx', 'app-a');
  const pubsub = broker({ enableDeadLetter: 'true' });
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async () => 'nack');
  await until('the queue', async () => (await queueDepth(queue).catch(() => -1)) === 0);
  await pubsub.publish(topic, Buffer.from('poison'), {});
  await until('the dead-letter queue has it', async () => (await queueDepth(`dlq-${queue}`)) === 1);
});

t.test('a message unacked when the subscriber goes away is delivered to the next one', async (t) => {
  const { topic, queue } = names('restart', 'app-a');
  const first = new RabbitMqBroker(rabbitMqSettings({ connectionString: TEST_AMQP_URL }), silent);
  let firstSaw = 0;
  await first.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, () => {
    firstSaw++;
    return new Promise<HandlerVerdict>(() => {});
  });
  await until('the queue', async () => (await queueDepth(queue).catch(() => -1)) === 0);
  await first.publish(topic, Buffer.from('survivor'), {});
  await until('the first subscriber holds it', () => firstSaw === 1);
  await first.close(); // waits CLOSE_DRAIN_MS for the app, then gives the message back unacked
  const second = broker();
  const got: string[] = [];
  await second.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    got.push(message.data.toString());
    return 'ack';
  });
  await until('redelivery', () => got.length === 1);
  t.same(got, ['survivor']);
});

t.test('acks go out together, yet a delivery still in hand holds back none of the later ones and is never acked with them', async (t) => {
  const { topic, queue } = names('acks', 'app-a');
  const pubsub = new RabbitMqBroker(rabbitMqSettings({ connectionString: TEST_AMQP_URL }), silent);
  const acked: string[] = [];
  let slowSeen = false;
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    const text = message.data.toString();
    if (text === 'slow') {
      slowSeen = true;
      return new Promise<HandlerVerdict>(() => {});
    }
    acked.push(text);
    return 'ack';
  });
  await until('the queue', async () => (await queueDepth(queue).catch(() => -1)) === 0);
  await pubsub.publish(topic, Buffer.from('slow'), {});
  await until('the slow one is in hand', () => slowSeen);
  await Promise.all(Array.from({ length: 20 }, (_, i) => pubsub.publish(topic, Buffer.from(String(i)), {})));
  await until('the others handled', () => acked.length === 20);
  await pubsub.close(); // the slow one is given back unacked after CLOSE_DRAIN_MS
  t.equal(await queueDepth(queue), 1, 'only the slow one is back in the queue: the 20 were acked, it was not');
});

t.test('an unreachable broker fails a publish quickly', async (t) => {
  const pubsub = new RabbitMqBroker(rabbitMqSettings({ connectionString: 'amqp://guest:guest@127.0.0.1:1' }), silent);
  t.teardown(() => pubsub.close());
  const started = Date.now();
  await t.rejects(pubsub.publish('nowhere', Buffer.from('x'), {}));
  t.ok(Date.now() - started < 3000, `failed in ${Date.now() - started} ms`);
});
