/**
 * `pubsub.redis` against a private, persistent redis-server: Dapr's stream layout, consumer groups,
 * XACK only after the handler said ack, reclaim of nacked and orphaned entries, maxLenApprox, fast
 * publish failures during an outage, and a broker killed (SIGKILL) mid-stream: no message lost.
 */
import type { AddressInfo, Socket } from 'node:net';
import { connect, createServer } from 'node:net';
import t from 'tap';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisStreamsBroker, redisStreamsSettings } from '../../gateway/dapr/pubsub/redis-streams.js';
import { BrokerConfigError } from '../../gateway/dapr/pubsub/broker.js';
import type { BrokerMessage, HandlerVerdict } from '../../gateway/dapr/pubsub/broker.js';
import { startPrivateRedis } from '../helpers/redis-server.js';

const redis = await startPrivateRedis({ persistent: true });
t.teardown(() => redis.dispose());
const silent = pino({ level: 'silent' });
const inspector = new Redis(redis.url, { lazyConnect: false });
inspector.on('error', () => {});
t.teardown(() => inspector.disconnect());

let topicCounter = 0;
const freshTopic = (): string => `topic-${process.pid}-${++topicCounter}`;

function broker(extra: Record<string, string> = {}): RedisStreamsBroker {
  const created = new RedisStreamsBroker(
    redisStreamsSettings({ redisHost: `127.0.0.1:${redis.port}`, processingTimeout: '300ms', redeliverInterval: '100ms', ...extra }),
    silent,
  );
  t.teardown(() => created.close());
  return created;
}

async function until(what: string, condition: () => boolean | Promise<boolean>, deadlineMs = 60_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function captureError(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}

async function pendingCount(topic: string, group: string): Promise<number> {
  const summary = (await inspector.xpending(topic, group)) as [number, ...unknown[]];
  return Number(summary[0]);
}

t.test('metadata is read as Dapr documents it, and bad values name the field', async (t) => {
  const settings = redisStreamsSettings({ redisHost: 'redis.local:6380', processingTimeout: '1500', redeliverInterval: '2s', maxLenApprox: '50' });
  t.equal(settings.host, 'redis.local');
  t.equal(settings.port, 6380);
  t.equal(settings.processingTimeoutMs, 1500, 'a bare number is milliseconds');
  t.equal(settings.redeliverIntervalMs, 2000);
  t.equal(settings.maxLenApprox, 50);
  t.throws(() => redisStreamsSettings({}), /redisHost: is required/);
  t.ok(captureError(() => redisStreamsSettings({})) instanceof BrokerConfigError);
  t.throws(() => redisStreamsSettings({ redisHost: 'x:1', processingTimeout: 'soon' }), /processingTimeout/);
  t.throws(() => redisStreamsSettings({ redisHost: 'x:1', maxLenApprox: '-3' }), /maxLenApprox/);
});

t.test('publish writes Dapr stream entries; a subscriber gets data and metadata; XACK follows the ack', async (t) => {
  const topic = freshTopic();
  const pubsub = broker();
  const received: BrokerMessage[] = [];
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    received.push(message);
    return 'ack';
  });
  await until('the group', async () => (await inspector.exists(topic)) === 1);
  await pubsub.publish(topic, Buffer.from('{"hello":1}'), { priority: 'high' });
  await until('delivery', () => received.length === 1);
  t.equal(received[0]?.data.toString(), '{"hello":1}');
  t.same(received[0]?.metadata, { priority: 'high' });
  const entries = await inspector.xrange(topic, '-', '+');
  t.same(entries[0]?.[1], ['data', '{"hello":1}', 'metadata', '{"priority":"high"}'], 'fields data + metadata, stream named after the topic');
  await until('the ack', async () => (await pendingCount(topic, 'app-a')) === 0);
});

t.test('each consumer group gets every message; replicas of one group share them', async (t) => {
  const topic = freshTopic();
  const pubsub = broker();
  const seen: Record<string, string[]> = { a1: [], a2: [], b: [] };
  const record = (who: string) => async (message: BrokerMessage): Promise<HandlerVerdict> => {
    seen[who]?.push(message.data.toString());
    return 'ack';
  };
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, record('a1'));
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, record('a2'));
  await pubsub.subscribe({ topic, consumerGroup: 'app-b', metadata: {} }, record('b'));
  await until('both groups', async () => ((await inspector.xinfo('GROUPS', topic).catch(() => [])) as unknown[]).length === 2);
  for (let i = 0; i < 40; i++) await pubsub.publish(topic, Buffer.from(String(i)), {});
  await until('all deliveries', () => (seen['a1']?.length ?? 0) + (seen['a2']?.length ?? 0) === 40 && seen['b']?.length === 40);
  const groupA = [...(seen['a1'] ?? []), ...(seen['a2'] ?? [])].sort((x, y) => Number(x) - Number(y));
  t.same(groupA, Array.from({ length: 40 }, (_, i) => String(i)), 'group a saw each message exactly once across its replicas');
});

t.test('entries are read up to queueDepth ahead and handled by at most concurrency workers; their acks all land', async (t) => {
  const topic = freshTopic();
  // No reclaim during the test: every delivery below comes from the read loop.
  const pubsub = broker({ concurrency: '3', queueDepth: '5', processingTimeout: '0' });
  // Published before the group exists (it starts at the stream's beginning), so the reads find them all:
  // the read-ahead is refilled once half empty, and trickling entries could leave it anywhere above that.
  for (let n = 0; n < 20; n++) await pubsub.publish(topic, Buffer.from(String(n)), {});
  let running = 0;
  let mostAtOnce = 0;
  const handled: string[] = [];
  const releases: (() => void)[] = [];
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    running++;
    mostAtOnce = Math.max(mostAtOnce, running);
    await new Promise<void>((resolve) => releases.push(resolve));
    running--;
    handled.push(message.data.toString());
    return 'ack';
  });
  await until('three handlers busy', () => running === 3);
  // Read = handed to a worker or waiting in the local queue: both are pending in the group.
  await until('the local queue full', async () => (await pendingCount(topic, 'app-a')) === 3 + 5);
  t.equal(await pendingCount(topic, 'app-a'), 8, 'no more than concurrency + queueDepth entries are read ahead');
  while (handled.length < 20) {
    releases.splice(0).forEach((release) => release());
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  t.equal(mostAtOnce, 3, 'never more than concurrency handlers at once');
  t.same([...handled].sort((a, b) => Number(a) - Number(b)), Array.from({ length: 20 }, (_, n) => String(n)), 'every entry handled once');
  await until('every ack', async () => (await pendingCount(topic, 'app-a')) === 0);
});

async function xackCalls(): Promise<number> {
  const stats = await inspector.info('commandstats');
  return Number(/cmdstat_xack:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

t.test('acks of answers that come one per event-loop turn still go out together, in a few XACKs', async (t) => {
  const topic = freshTopic();
  const pubsub = broker({ concurrency: '20', processingTimeout: '0' });
  for (let n = 0; n < 20; n++) await pubsub.publish(topic, Buffer.from(String(n)), {});
  const releases: (() => void)[] = [];
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async () => {
    await new Promise<void>((resolve) => releases.push(resolve));
    return 'ack';
  });
  await until('every entry in hand', () => releases.length === 20);
  const before = await xackCalls();
  // One answer per turn (two immediates later: the next answer comes after whatever the last one queued),
  // as a delivering sidecar reads the app's answers from its connections.
  for (const release of releases) {
    release();
    for (let hop = 0; hop < 2; hop++) await new Promise((resolve) => setImmediate(resolve));
  }
  await until('every ack', async () => (await pendingCount(topic, 'app-a')) === 0);
  const calls = (await xackCalls()) - before;
  t.ok(calls <= 10, `20 acks answered in 20 turns went out in ${calls} XACKs`);
});

t.test('a nack leaves the entry pending and the reclaim loop redelivers it after processingTimeout', async (t) => {
  const topic = freshTopic();
  const pubsub = broker();
  const attempts: number[] = [];
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async () => {
    attempts.push(Date.now());
    return attempts.length < 3 ? 'nack' : 'ack';
  });
  await until('the group', async () => (await inspector.exists(topic)) === 1);
  await pubsub.publish(topic, Buffer.from('x'), {});
  await until('three attempts', () => attempts.length === 3);
  t.ok((attempts[1] ?? 0) - (attempts[0] ?? 0) >= 250, 'not redelivered before processingTimeout');
  await until('the ack', async () => (await pendingCount(topic, 'app-a')) === 0);
});

t.test('entries left pending by a crashed consumer are delivered by the next one', async (t) => {
  const topic = freshTopic();
  const first = broker();
  let firstSaw = 0;
  const stuck = await first.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, () => {
    firstSaw++;
    return new Promise<HandlerVerdict>(() => {}); // never settles: the process "dies" holding it
  });
  await until('the group', async () => (await inspector.exists(topic)) === 1);
  await first.publish(topic, Buffer.from('orphan'), {});
  await until('the first consumer took it', () => firstSaw === 1);
  void stuck; // the crashed consumer is abandoned, not closed (close would wait for the handler)
  const second = broker();
  const got: string[] = [];
  await second.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    got.push(message.data.toString());
    return 'ack';
  });
  await until('redelivery to the next consumer', () => got.length === 1);
  t.same(got, ['orphan']);
  await until('the ack', async () => (await pendingCount(topic, 'app-a')) === 0);
});

t.test('maxLenApprox trims the stream', async (t) => {
  const topic = freshTopic();
  const pubsub = broker({ maxLenApprox: '10' });
  for (let i = 0; i < 600; i++) await pubsub.publish(topic, Buffer.from(String(i)), {});
  const length = await inspector.xlen(topic);
  t.ok(length < 300, `stream trimmed to about maxLenApprox (XLEN ${length})`);
});

t.test('a publish while the connection is made (its ready check not yet answered) waits for it instead of failing', async (t) => {
  // A relay to the private redis-server that holds Redis's first answers back, as a slow network would:
  // the broker's connections are open but not ready while its ready check waits.
  const HOLD_MS = 300;
  const accepted: Socket[] = [];
  const relay = createServer((client) => {
    accepted.push(client);
    const upstream = connect(redis.port, '127.0.0.1');
    const opened = Date.now();
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      const wait = Math.max(0, opened + HOLD_MS - Date.now());
      setTimeout(() => client.write(chunk), wait);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => relay.close(() => resolve())));
  const port = (relay.address() as AddressInfo).port;
  const topic = freshTopic();
  const pubsub = new RedisStreamsBroker(redisStreamsSettings({ redisHost: `127.0.0.1:${port}` }), silent);
  t.teardown(() => pubsub.close());
  await until('both connections accepted', () => accepted.length === 2);
  await pubsub.publish(topic, Buffer.from('early'), {});
  const entries = await inspector.xrange(topic, '-', '+');
  t.same(entries.map((entry) => entry[1][1]), ['early'], 'written once the connection was ready');
});

t.test('a publish while Redis is down fails within the publish timeout; it works again after the restart', async (t) => {
  const topic = freshTopic();
  const pubsub = broker();
  await pubsub.publish(topic, Buffer.from('before'), {});
  await redis.stop('SIGKILL');
  const started = Date.now();
  await t.rejects(pubsub.publish(topic, Buffer.from('during'), {}));
  t.ok(Date.now() - started < 3000, `failed fast (${Date.now() - started} ms)`);
  await redis.start();
  await until('publishing works again', async () => {
    try {
      await pubsub.publish(topic, Buffer.from('after'), {});
      return true;
    } catch {
      return false;
    }
  });
  t.same((await inspector.xrange(topic, '-', '+')).map(([, fields]) => fields[1]), ['before', 'after'], 'the persistent server kept the stream');
});

t.test('redis-server killed mid-stream: every message is delivered, none is left pending, duplicates only for acks in flight', async (t) => {
  const topic = freshTopic();
  const pubsub = broker({ concurrency: '4' });
  const deliveries = new Map<string, number>();
  await pubsub.subscribe({ topic, consumerGroup: 'app-a', metadata: {} }, async (message) => {
    const id = message.data.toString();
    deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
    await new Promise((resolve) => setTimeout(resolve, 2));
    return 'ack';
  });
  await until('the group', async () => (await inspector.exists(topic)) === 1);
  const total = 300;
  const published: string[] = [];
  for (let i = 0; i < total; i++) {
    const id = `m${i}`;
    if (i === 150) {
      await redis.stop('SIGKILL');
      await redis.start();
    }
    // A publish that fails during the outage is the publisher's to retry, as the API's 500 tells it.
    for (;;) {
      try {
        await pubsub.publish(topic, Buffer.from(id), {});
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    published.push(id);
  }
  await until('every message delivered', () => published.every((id) => deliveries.has(id)), 30_000);
  await until('nothing pending', async () => (await pendingCount(topic, 'app-a')) === 0, 30_000);
  const duplicates = [...deliveries.values()].filter((count) => count > 1).length;
  t.ok(duplicates <= 4, `at most the in-flight messages (concurrency 4) were delivered twice (${duplicates})`);
  t.equal(deliveries.size, total, 'no message lost');
});
