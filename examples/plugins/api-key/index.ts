/**
 * API keys checked against a Redis set: a request without the key header gets 401, a key that is not
 * a member of the set 403; an accepted key is removed from the forwarded request (the upstream never
 * sees it) and the request carries `x-api-key-verified: true`. Redis unreachable fails the request
 * like any plugin failure (500, or let through with `failStrategy: FAIL_OPEN`).
 */
import { Redis } from 'ioredis';
import { Type, definePlugin } from 'meshgate/plugin-api';
import type { PluginCounter } from 'meshgate/plugin-api';

interface ApiKeyState {
  readonly header: string;
  readonly setKey: string;
  readonly redis: Redis;
  readonly checks: PluginCounter<'result'>;
}

export default definePlugin({
  configSchema: Type.Object(
    {
      redisUrl: Type.String({ pattern: '^rediss?://', description: 'redis://host:port/db of the key set.' }),
      setKey: Type.String({ minLength: 1, default: 'api-keys', description: 'The Redis SET holding the valid keys.' }),
      header: Type.String({ minLength: 1, default: 'x-api-key', description: 'Request header carrying the key.' }),
      timeoutMs: Type.Integer({ minimum: 1, default: 500, description: 'Longest wait for Redis per request.' }),
    },
    { additionalProperties: false },
  ),
  compile(setup): ApiKeyState {
    // lazyConnect: compile runs for `meshgate validate` too, which must not open connections.
    const redis = new Redis(setup.config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: setup.config.timeoutMs });
    redis.on('error', (error: Error) => setup.logger.warn({ err: error.message }, 'api-key store unreachable'));
    const checks = setup.metrics.counter({ name: 'example_api_key_checks_total', help: 'API key checks by result.', labelNames: ['result'] });
    return { header: setup.config.header.toLowerCase(), setKey: setup.config.setKey, redis, checks };
  },
  async onRequest(request, state) {
    const key = request.header(state.header);
    if (key === undefined || key === '') {
      state.checks.inc({ result: 'missing' });
      request.reply({ status: 401, reason: 'api_key_missing', flag: 'UAEX', headers: { 'www-authenticate': `ApiKey header="${state.header}"` } });
      return;
    }
    const member = await state.redis.sismember(state.setKey, key);
    if (member !== 1) {
      state.checks.inc({ result: 'invalid' });
      request.reply({ status: 403, reason: 'api_key_invalid', flag: 'UAEX' });
      return;
    }
    state.checks.inc({ result: 'valid' });
    request.removeRequestHeader(state.header);
    request.setRequestHeader('x-api-key-verified', 'true');
  },
  dispose(state) {
    state.redis.disconnect();
  },
});
