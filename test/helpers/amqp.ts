/**
 * The RabbitMQ the tests use: `MESHGATE_TEST_AMQP_URL` (set by `.ci/rabbitmq`), else the machine's
 * broker on 127.0.0.1:5672. A test that needs it and cannot reach it FAILS with the reason instead of
 * skipping, so a CI machine without RabbitMQ never passes silently. Names are unique per test run and
 * deleted afterwards, so parallel runs on one broker never see each other.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Amqp from 'amqplib';

export const TEST_AMQP_URL = process.env['MESHGATE_TEST_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';

export function amqplib(): typeof Amqp {
  return createRequire(import.meta.url)('amqplib') as typeof Amqp;
}

/** Connects or throws an error that says what to do. */
export async function connectTestAmqp(): Promise<Amqp.ChannelModel> {
  try {
    const connection = await amqplib().connect(TEST_AMQP_URL, { timeout: 5000 });
    connection.on('error', () => {});
    return connection;
  } catch (error) {
    throw new Error(
      `RabbitMQ unreachable at ${TEST_AMQP_URL.replace(/:[^:@/]*@/, ':***@')} (${(error as Error).message}); ` +
        'run .ci/rabbitmq or set MESHGATE_TEST_AMQP_URL',
    );
  }
}

/** A name no other test run uses. */
export function uniqueAmqpName(label: string): string {
  return `mgtest-${label}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Deletes queues and exchanges a test declared (missing ones are fine). */
export async function deleteAmqpNames(connection: Amqp.ChannelModel, names: { queues?: readonly string[]; exchanges?: readonly string[] }): Promise<void> {
  for (const queue of names.queues ?? []) {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    await channel.deleteQueue(queue).catch(() => undefined);
    await channel.close().catch(() => undefined);
  }
  for (const exchange of names.exchanges ?? []) {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    await channel.deleteExchange(exchange).catch(() => undefined);
    await channel.close().catch(() => undefined);
  }
}
