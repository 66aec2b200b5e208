import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import pino from 'pino';
import { caInit, caIssue } from '../../gateway/identity/ca-cli.js';
import { CertificateStore } from '../../gateway/identity/cert-store.js';

t.test('ca init then ca issue produce files a CertificateStore accepts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-ca-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const init = await caInit({ dir, trustDomain: 'example.org' });
  t.equal(init.exitCode, 0, init.message);
  t.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600, 'CA key is private');

  const again = await caInit({ dir });
  t.equal(again.exitCode, 1);
  t.match(again.message, /already exists/);

  const out = join(dir, 'out');
  const issued = await caIssue({ dir, namespace: 'shop', serviceAccount: 'cart', out });
  t.equal(issued.exitCode, 0, issued.message);
  t.match(issued.message, 'spiffe://example.org/ns/shop/sa/cart', 'trust domain taken from the CA');
  t.equal(readFileSync(join(out, 'root-cert.pem'), 'utf8'), readFileSync(join(dir, 'ca.crt'), 'utf8'));

  const store = await CertificateStore.fromFiles({
    files: { certChain: join(out, 'cart.crt'), privateKey: join(out, 'cart.key'), rootCert: join(out, 'root-cert.pem') },
    trustDomain: 'example.org',
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => store.close());
  t.equal(store.identity.principal, 'example.org/ns/shop/sa/cart');
});

t.test('ca issue reports usage and missing-CA errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-ca-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = await caIssue({ dir, namespace: 'a', serviceAccount: 'b' });
  t.equal(missing.exitCode, 1);
  t.match(missing.message, join(dir, 'ca.crt'));
  t.match(missing.message, /ca init/);
  t.equal((await caInit({ dir, trustDomain: 'Bad Domain' })).exitCode, 2);
  t.equal((await caInit({ dir })).exitCode, 0);
  const bad = await caIssue({ dir, namespace: 'a/b', serviceAccount: 'c' });
  t.equal(bad.exitCode, 2);
  t.match(bad.message, /invalid namespace/);
});
