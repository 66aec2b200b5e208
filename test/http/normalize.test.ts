import t from 'tap';
import { createNormalizer, normalizeAuthority, trustedClientIp, validateMethod } from '../../gateway/http/normalize.js';

const base = createNormalizer('BASE');
const merge = createNormalizer('MERGE_SLASHES');
const decode = createNormalizer('DECODE_AND_MERGE_SLASHES');
const none = createNormalizer('NONE');

function pathOf(result: ReturnType<typeof base>): string {
  if (!result.ok) throw new Error(`rejected: ${result.reason}`);
  return result.path;
}

t.test('already-normal path is returned as the same string (fast path)', async (t) => {
  const raw = '/api/products/123';
  const result = base(raw);
  t.ok(result.ok);
  t.equal(pathOf(result), raw);
  t.same(base('/api/x?q=1&b=%2F'), { ok: true, path: '/api/x', query: 'q=1&b=%2F' });
});

t.test('bypass: dot segments are removed per RFC 3986', async (t) => {
  t.equal(pathOf(base('/a/./b/../c')), '/a/c');
  t.equal(pathOf(base('/health/../api/products/1')), '/api/products/1');
  t.equal(pathOf(base('/../../etc/passwd')), '/etc/passwd');
  t.equal(pathOf(base('/a/b/..')), '/a/');
  t.equal(pathOf(base('/a/.')), '/a/');
  t.equal(pathOf(base('/.well-known/x')), '/.well-known/x');
  t.equal(pathOf(base('/a/..b/c')), '/a/..b/c', 'a segment that only starts with dots is not a dot segment');
});

t.test('bypass: percent-encoded dots are decoded before dot-segment removal, once only', async (t) => {
  t.equal(pathOf(base('/health/%2e%2E/api/products/1')), '/api/products/1');
  t.equal(pathOf(base('/health/%252e%252e/api')), '/health/%252e%252e/api', 'no double decoding');
  t.equal(pathOf(base('/%61pi/%7Euser')), '/api/~user');
  t.equal(pathOf(base('/a%3bb')), '/a%3Bb', 'reserved escapes kept, hex upper-cased');
});

t.test('bypass: backslashes become slashes', async (t) => {
  t.equal(pathOf(base('/health\\..\\api/products')), '/api/products');
});

t.test('bypass: double slashes are kept in BASE and merged in MERGE_SLASHES', async (t) => {
  t.equal(pathOf(base('//api//products')), '//api//products');
  t.equal(pathOf(merge('//api//products')), '/api/products');
  t.equal(pathOf(merge('/a//../b')), '/a/b', 'Envoy order: dot segments are removed before slashes merge');
});

t.test('bypass: encoded slashes and backslashes are decoded only in DECODE_AND_MERGE_SLASHES', async (t) => {
  t.equal(pathOf(base('/admin%2fsecret')), '/admin%2Fsecret');
  t.equal(pathOf(merge('/admin%2Fsecret')), '/admin%2Fsecret');
  t.equal(pathOf(decode('/admin%2fsecret')), '/admin/secret');
  t.equal(pathOf(decode('/health%2F..%2Fadmin')), '/admin');
  t.equal(pathOf(decode('/health%5c..%5cadmin')), '/admin');
  t.equal(pathOf(decode('/a%2F%2Fb')), '/a/b');
  t.equal(pathOf(decode('/a%252Fb')), '/a%252Fb', 'no double decoding of %25');
});

t.test('bypass: fragments are dropped and never reach the path', async (t) => {
  t.same(base('/api/products#/../admin'), { ok: true, path: '/api/products', query: '' });
  t.same(base('/a?x=1#frag'), { ok: true, path: '/a', query: 'x=1' });
  t.same(base('/a#frag?x=1'), { ok: true, path: '/a', query: '' });
});

t.test('bypass: path parameters are kept verbatim, dot segments with parameters are rejected', async (t) => {
  t.equal(pathOf(base('/api/products;jsessionid=1/2')), '/api/products;jsessionid=1/2');
  t.equal(base('/health/..;/admin').ok, false);
  t.equal(base('/health/%2e%2e;x/admin').ok, false);
  t.equal(base('/health/.;/admin').ok, false);
});

t.test('NUL, %00 and malformed escapes are rejected in every mode', async (t) => {
  for (const normalize of [none, base, merge, decode]) {
    t.equal(normalize('/a%00b').ok, false);
    t.equal(normalize('/a\0b').ok, false);
    t.equal(normalize('/a%zzb').ok, false);
    t.equal(normalize('/a%4').ok, false);
  }
});

t.test('NONE leaves the path alone', async (t) => {
  t.equal(pathOf(none('/a/../b//%2e')), '/a/../b//%2e');
});

t.test('bypass: absolute-form targets yield their path and authority', async (t) => {
  t.same(base('http://Example.COM:8080/a/../admin?x=1'), {
    ok: true,
    path: '/admin',
    query: 'x=1',
    absoluteAuthority: 'example.com:8080',
  });
  t.same(base('https://example.com'), { ok: true, path: '/', query: '', absoluteAuthority: 'example.com' });
  t.equal(base('http://user@evil/x').ok, false);
  t.equal(base('api/products').ok, false);
  t.equal(base('*').ok, false);
});

t.test('methods must be upper-case tokens', async (t) => {
  t.ok(validateMethod('GET'));
  t.ok(validateMethod('PROPFIND'));
  t.notOk(validateMethod('get'));
  t.notOk(validateMethod('Get'));
  t.notOk(validateMethod(''));
});

t.test('bypass: mixed-case hosts and hosts with ports', async (t) => {
  t.same(normalizeAuthority('API.Example.com:8443'), { authority: 'api.example.com:8443', host: 'api.example.com', port: 8443 });
  t.same(normalizeAuthority('Example.com'), { authority: 'example.com', host: 'example.com', port: null });
  t.same(normalizeAuthority('[::1]:80'), { authority: '[::1]:80', host: '[::1]', port: 80 });
  t.same(normalizeAuthority('[::1]'), { authority: '[::1]', host: '[::1]', port: null });
});

t.test('trusted client IP from X-Forwarded-For', async (t) => {
  t.equal(trustedClientIp('1.1.1.1', '10.0.0.1', 0), '10.0.0.1', 'no trusted hops: the peer');
  t.equal(trustedClientIp('203.0.113.128, 203.0.113.10, 192.0.2.1', '192.0.2.5', 1), '192.0.2.1');
  t.equal(trustedClientIp('203.0.113.128, 203.0.113.10, 192.0.2.1', '192.0.2.5', 2), '203.0.113.10');
  t.equal(trustedClientIp('192.0.2.1', '192.0.2.5', 2), '192.0.2.5', 'too few entries: the peer');
  t.equal(trustedClientIp(['1.1.1.1', 'junk'], '192.0.2.5', 1), '192.0.2.5', 'unparsable entry: the peer');
  t.equal(trustedClientIp(['1.1.1.1', '2001:db8::1'], '192.0.2.5', 1), '2001:db8::1');
});
