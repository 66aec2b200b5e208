import t from 'tap';
import { redactComponentSpec, redactSecrets } from '../../gateway/runtime/config-dump.js';

t.test('credentials inside URLs are masked in the config dump, everything else is kept', async (t) => {
  const spec = { redis: { url: 'redis://user:s3cret@redis.local:6379/0', keyPrefix: 'mg:' }, jwks: ['https://token@idp.example/keys'], path: '/a@b', port: 80 };
  t.same(redactSecrets(spec), {
    redis: { url: 'redis://[redacted]@redis.local:6379/0', keyPrefix: 'mg:' },
    jwks: ['https://[redacted]@idp.example/keys'],
    path: '/a@b',
    port: 80,
  });
  t.notMatch(JSON.stringify(redactSecrets(spec)), /s3cret|token@/);
});

t.test("a Dapr Component's inline credentials are masked, references and other settings kept", async (t) => {
  const spec = {
    type: 'pubsub.rabbitmq',
    metadata: [
      { name: 'redisPassword', value: 'p4ss' },
      { name: 'connectionString', value: 'amqp://u:pw@mq:5672' },
      { name: 'host', value: 'amqp://guest:guest2@mq:5672' },
      { name: 'redisHost', value: 'redis:6379' },
      { name: 'apiToken', secretKeyRef: { name: 'tok', key: 'tok' } },
    ],
  };
  t.same(redactComponentSpec(spec), {
    type: 'pubsub.rabbitmq',
    metadata: [
      { name: 'redisPassword', value: '[redacted]' },
      { name: 'connectionString', value: '[redacted]' },
      { name: 'host', value: 'amqp://[redacted]@mq:5672' },
      { name: 'redisHost', value: 'redis:6379' },
      { name: 'apiToken', secretKeyRef: { name: 'tok', key: 'tok' } },
    ],
  });
});
