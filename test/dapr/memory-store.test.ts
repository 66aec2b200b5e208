/** state.in-memory follows the Redis store's rules: versions as ETags, first-write, TTL (injected clock), key prefixes. */
import t from 'tap';
import { keyPrefixer } from '../../gateway/dapr/state/keys.js';
import { canonicalJson } from '../../gateway/dapr/state/canonical-json.js';
import { MemoryStateStore } from '../../gateway/dapr/state/memory-store.js';
import type { SetOperation } from '../../gateway/dapr/state/store.js';

const set = (key: string, value: string, extra: Partial<SetOperation> = {}): SetOperation => ({
  kind: 'set',
  key,
  data: Buffer.from(value),
  etag: null,
  firstWrite: false,
  ttlSeconds: null,
  ...extra,
});

t.test('versions, ETag checks and first-write', async (t) => {
  const store = new MemoryStateStore();
  await store.set(set('k', '1'));
  await store.set(set('k', '2'));
  t.same(await store.get('k'), { data: Buffer.from('2'), etag: '2' });
  await t.rejects(store.set(set('k', '3', { etag: '1' })), { name: 'EtagMismatchError' });
  await t.rejects(store.set(set('k', '3', { etag: 'x' })), { name: 'EtagInvalidError' });
  await store.set(set('f', '1', { firstWrite: true }));
  await t.rejects(store.set(set('f', '2')), { name: 'EtagMismatchError' }, 'first-write items need the ETag');
  await store.set(set('f', '2', { etag: '1' }));
  await t.rejects(store.delete({ kind: 'delete', key: 'f', etag: '1' }), { name: 'EtagMismatchError' });
  await store.delete({ kind: 'delete', key: 'f', etag: null });
  t.equal(await store.get('f'), null);
  await t.rejects(store.transact([set('a', '1'), set('k', '9', { etag: '1' })]), { name: 'EtagMismatchError' });
  t.same(await store.get('a'), { data: Buffer.from('1'), etag: '1' }, 'no rollback, as in a Redis MULTI/EXEC');
});

t.test('TTL expires on the injected clock; ≤ 0 persists; no TTL keeps the expiry', async (t) => {
  let now = 1_000_000;
  const store = new MemoryStateStore(() => now);
  await store.set(set('t', '1', { ttlSeconds: 10 }));
  await store.set(set('t', '2'));
  now += 9_999;
  t.ok(await store.get('t'), 'alive just before');
  now += 1;
  t.equal(await store.get('t'), null, 'gone at the deadline');
  await store.set(set('p', '1', { ttlSeconds: 1 }));
  await store.set(set('p', '2', { ttlSeconds: 0 }));
  now += 60_000;
  t.ok(await store.get('p'), 'persisted');
});

t.test("key prefixes and the stored value's bytes", async (t) => {
  const context = { appId: 'order-service', namespace: 'my-app', storeName: 'order-store' };
  t.equal(keyPrefixer('appid', context).storeKey('k'), 'order-service||k');
  t.equal(keyPrefixer('name', context).storeKey('k'), 'order-store||k');
  t.equal(keyPrefixer('namespace', context).storeKey('k'), 'my-app.order-service||k');
  t.equal(keyPrefixer('none', context).storeKey('k'), 'k');
  t.equal(keyPrefixer('shared', context).storeKey('k'), 'shared||k');
  t.equal(keyPrefixer('appid', context).appKey('order-service||a||b'), 'a||b');
  t.equal(canonicalJson({ b: [1, { d: 1, c: 'x' }], a: null, u: undefined }), '{"a":null,"b":[1,{"c":"x","d":1}]}');
  t.equal(canonicalJson('s'), '"s"');
});
