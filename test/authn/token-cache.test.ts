import t from 'tap';
import { RemoteJwks } from '../../plugins/authn/jwks.js';
import { VerifiedTokenCache } from '../../plugins/authn/token-cache.js';

const verified = (sub: string) => ({ ruleIndex: 0, claims: { sub }, principal: `iss/${sub}` });

t.test('LRU: bounded, least recently used evicted first, expired entries dropped', async (t) => {
  const cache = new VerifiedTokenCache(2);
  cache.set('a', verified('a'), 1_000, null);
  cache.set('b', verified('b'), 1_000, null);
  t.ok(cache.get('a', 0), 'touch a');
  cache.set('c', verified('c'), 1_000, null);
  t.equal(cache.get('b', 0), null, 'b was least recently used');
  t.ok(cache.get('a', 0));
  t.equal(cache.get('c', 1_000), null, 'expired at exp');
  t.equal(cache.size, 1);
  const disabled = new VerifiedTokenCache(0);
  disabled.set('a', verified('a'), 1_000, null);
  t.equal(disabled.get('a', 0), null);
});

t.test('entries verified with a JWKS are ignored once its generation changes', async (t) => {
  const jwks = new RemoteJwks('http://127.0.0.1:1/unused', { timeoutMs: 10, cacheDurationMs: 1, minRefreshIntervalMs: 0, maxBytes: 1024 });
  const cache = new VerifiedTokenCache(10);
  cache.set('a', verified('a'), 1_000, jwks);
  t.ok(cache.get('a', 0));
  jwks.generation++;
  t.equal(cache.get('a', 0), null);
});
