import t from 'tap';
import { redactSecrets } from '../../gateway/runtime/config-dump.js';

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
