import t from 'tap';
import { RemoteJwks } from '../../plugins/authn/jwks.js';
import { VerifiedTokenCache } from '../../plugins/authn/token-cache.js';

const LOCATION = 'header:authorization:Bearer ';
const verified = (sub: string) => ({ ruleIndex: 0, claims: { sub }, principal: `iss/${sub}` });

t.test('LRU: bounded, least recently used evicted first, expired entries dropped', async (t) => {
  const cache = new VerifiedTokenCache(2);
  cache.set('a', LOCATION, verified('a'), 1_000, null);
  cache.set('b', LOCATION, verified('b'), 1_000, null);
  t.ok(cache.get('a', LOCATION, 0), 'touch a');
  cache.set('c', LOCATION, verified('c'), 1_000, null);
  t.equal(cache.get('b', LOCATION, 0), null, 'b was least recently used');
  t.ok(cache.get('a', LOCATION, 0));
  t.equal(cache.get('c', LOCATION, 1_000), null, 'expired at exp');
  t.equal(cache.size, 1);
  const disabled = new VerifiedTokenCache(0);
  disabled.set('a', LOCATION, verified('a'), 1_000, null);
  t.equal(disabled.get('a', LOCATION, 0), null);
});

t.test('entries verified with a JWKS are ignored once its generation changes', async (t) => {
  const jwks = new RemoteJwks('http://127.0.0.1:1/unused', { timeoutMs: 10, cacheDurationMs: 1, minRefreshIntervalMs: 0, maxBytes: 1024 });
  const cache = new VerifiedTokenCache(10);
  cache.set('a', LOCATION, verified('a'), 1_000, jwks);
  t.ok(cache.get('a', LOCATION, 0));
  jwks.generation++;
  t.equal(cache.get('a', LOCATION, 0), null);
});

t.test('a hit needs the whole token and the location it was verified at', async (t) => {
  const token = `eyJhbGciOiJSUzI1NiJ9.${'p'.repeat(400)}.${'s'.repeat(342)}`;
  const sameTail = `eyJhbGciOiJSUzI1NiJ9.${'q'.repeat(400)}.${'s'.repeat(342)}`;
  const cache = new VerifiedTokenCache(10);
  cache.set(token, LOCATION, verified('a'), 1_000, null);
  t.equal(cache.get(sameTail, LOCATION, 0), null, 'another token ending like a cached one is a miss');
  t.equal(cache.get(token, 'param:access_token', 0), null, 'the same token read from another location is a miss');
  t.equal(cache.get(token.slice(1), LOCATION, 0), null, 'a suffix of a cached token is a miss');
  t.same(cache.get(`${token}`.split('').join(''), LOCATION, 0), verified('a'), 'an equal token built anew is a hit');
  cache.set(sameTail, LOCATION, verified('b'), 1_000, null);
  t.equal(cache.get(token, LOCATION, 0), null, 'a token sharing the tail replaced the entry');
  t.same(cache.get(sameTail, LOCATION, 0), verified('b'));
  t.equal(cache.size, 1);
});

t.test('LRU order over many entries: every hit moves an entry to the newest end', async (t) => {
  const cache = new VerifiedTokenCache(3);
  for (const key of ['a', 'b', 'c']) cache.set(key, LOCATION, verified(key), 1_000, null);
  t.ok(cache.get('a', LOCATION, 0));
  t.ok(cache.get('b', LOCATION, 0));
  t.ok(cache.get('a', LOCATION, 0));
  cache.set('d', LOCATION, verified('d'), 1_000, null);
  t.equal(cache.get('c', LOCATION, 0), null, 'c, never touched, went first');
  cache.set('e', LOCATION, verified('e'), 1_000, null);
  t.equal(cache.get('b', LOCATION, 0), null, 'then b');
  t.ok(cache.get('a', LOCATION, 0));
  t.ok(cache.get('d', LOCATION, 0));
  t.ok(cache.get('e', LOCATION, 0));
  cache.set('d', LOCATION, verified('d2'), 1_000, null);
  cache.set('f', LOCATION, verified('f'), 1_000, null);
  t.equal(cache.get('a', LOCATION, 0), null, 're-setting d made it newest: a was the oldest');
  t.same(cache.get('d', LOCATION, 0), verified('d2'));
  t.equal(cache.size, 3);
});
