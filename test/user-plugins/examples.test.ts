/**
 * The example plugins of examples/plugins/ through a real gateway: the API-key check against a set in
 * a private redis-server, HMAC request signing verified by the upstream, and response headers.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import { freePorts, request } from '../e2e-ingress/support.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, canonicalString, sign } from '../../examples/plugins/hmac-signing/index.js';
import { exampleUrl, gatewayConfig, pluginYaml, shopRoutes } from './support.js';

const SECRET = 'a-shared-secret-of-32-bytes-long';

const redis = await startPrivateRedis();
t.teardown(() => redis.dispose());
const seed = new Redis(redis.url);
t.teardown(() => seed.quit());
await seed.sadd('team-keys', 'good-key');

/** The partner's check: rebuild the canonical string from the request as received and compare. */
const upstream = await startUpstream((req, res) => {
  const timestamp = String(req.headers[TIMESTAMP_HEADER] ?? '');
  const expected = `keyId=partner-1,signature=${sign(Buffer.from(SECRET), canonicalString(req.method ?? '', req.url ?? '', String(req.headers.host ?? '').replace(/:\d+$/, ''), timestamp))}`;
  const valid = req.headers[SIGNATURE_HEADER] === expected && Math.abs(Number(timestamp) - Date.now() / 1000) < 300;
  req.resume();
  res.setHeader('server', 'upstream');
  res.end(JSON.stringify({ signatureValid: valid, apiKey: req.headers['x-api-key'] ?? null, verified: req.headers['x-api-key-verified'] ?? null }));
});
t.teardown(() => upstream.close());

const [adminPort, port] = (await freePorts(2)) as [number, number];
const yaml = gatewayConfig(
  adminPort,
  port,
  upstream.port,
  [
    shopRoutes(`    - name: partner
      match: [{uri: {prefix: /partner}}]
      route: [{destination: {host: app.internal}}]
    - name: main
      route: [{destination: {host: app.internal}}]
`),
    pluginYaml({ name: 'api-key', url: exampleUrl('api-key'), phase: 'AUTHN', config: `{ redisUrl: "${redis.url}", setKey: team-keys }` }),
    pluginYaml({
      name: 'sign-partner',
      url: exampleUrl('hmac-signing'),
      config: '{ keyId: partner-1, secretFile: ./partner.secret }',
      extra: '  targetRefs: [{ kind: VirtualService, name: shop, namespace: default, sectionName: partner }]\n',
    }),
    pluginYaml({ name: 'security-headers', url: exampleUrl('response-headers'), config: '{ set: { x-frame-options: DENY, server: meshgate } }' }),
  ].join('\n'),
);
const dir = await configDir(yaml);
t.teardown(() => dir.remove());
await writeFile(join(dir.dir, 'partner.secret'), `${SECRET}\n`);
const gateway = await startGateway(dir.file);
t.teardown(() => gateway.stop());

t.test('api-key: missing 401, unknown 403, known passes without the key reaching the upstream', async (t) => {
  const missing = await request(port, '/x');
  t.equal(missing.status, 401);
  t.equal(missing.headers['x-meshgate-reason'], 'UAEX plugin[istio-system/api-key]{api_key_missing}');
  t.match(missing.headers['www-authenticate'], /ApiKey header="x-api-key"/);
  const unknown = await request(port, '/x', { headers: { 'x-api-key': 'bad-key' } });
  t.equal(unknown.status, 403);
  const known = await request(port, '/x', { headers: { 'x-api-key': 'good-key' } });
  t.equal(known.status, 200);
  t.same(JSON.parse(known.body), { signatureValid: false, apiKey: null, verified: 'true' });
});

t.test('api-key: a key added to the Redis set is accepted on the next request', async (t) => {
  t.equal((await request(port, '/x', { headers: { 'x-api-key': 'new-key' } })).status, 403);
  await seed.sadd('team-keys', 'new-key');
  t.equal((await request(port, '/x', { headers: { 'x-api-key': 'new-key' } })).status, 200);
});

t.test('hmac-signing: the partner route is signed and the upstream verifies it; other routes are not signed', async (t) => {
  const signed = await request(port, '/partner/orders?id=7', { headers: { 'x-api-key': 'good-key', [SIGNATURE_HEADER]: 'forged' } });
  t.equal(signed.status, 200);
  t.equal(JSON.parse(signed.body).signatureValid, true);
  const plain = await request(port, '/orders', { headers: { 'x-api-key': 'good-key' } });
  t.equal(JSON.parse(plain.body).signatureValid, false);
});

t.test('response-headers: set on relayed responses, over the upstream\'s own header', async (t) => {
  const relayed = await request(port, '/x', { headers: { 'x-api-key': 'good-key' } });
  t.equal(relayed.headers['x-frame-options'], 'DENY');
  t.equal(relayed.headers.server, 'meshgate', 'the plugin\'s value wins over the upstream\'s');
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  t.match(metrics, /example_api_key_checks_total\{result="valid"\} [1-9]/);
});

t.test('api-key: Redis down fails the request closed with the plugin named', async (t) => {
  await redis.stop();
  t.teardown(() => redis.start());
  const response = await request(port, '/x', { headers: { 'x-api-key': 'good-key' }, timeoutMs: 15000 });
  t.equal(response.status, 500);
  t.equal(response.headers['x-meshgate-reason'], 'PLUGIN plugin_failed[istio-system/api-key]');
});
