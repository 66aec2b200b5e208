import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { GatewaySpec } from '../../gateway/config/kinds/gateway.js';
import { buildListenerPlans } from '../../gateway/listeners/plan.js';
import { makeResource } from '../helpers/resources.js';

const gateway = (name: string, spec: GatewaySpec, namespace = 'istio-system') => makeResource<GatewaySpec>('Gateway', name, spec, { namespace });
const labels = { istio: 'ingressgateway' };

t.test('selector, protocol grouping, hosts and httpsRedirect', async (t) => {
  const { listeners, diagnostics } = buildListenerPlans({
    proxyLabels: labels,
    credentialsDirectory: '/nonexistent',
    gateways: [
      gateway('web', {
        selector: { istio: 'ingressgateway' },
        servers: [
          { port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts: ['*.example.com', './internal.example.com'], tls: { httpsRedirect: true } },
          { port: { number: 443, protocol: 'HTTPS', name: 'https' }, hosts: ['shop/a.example.com'], tls: { mode: 'SIMPLE', serverCertificate: '/c.crt', privateKey: '/c.key' } },
          { port: { number: 9000, protocol: 'TCP', name: 'tcp' }, hosts: ['*'] },
        ],
      }),
      gateway('grpc', { servers: [{ port: { number: 80, protocol: 'GRPC', name: 'grpc' }, hosts: ['grpc.example.com'] }] }),
      gateway('other-proxy', { selector: { istio: 'egressgateway' }, servers: [{ port: { number: 81, protocol: 'HTTP', name: 'h' }, hosts: ['*'] }] }),
    ],
  });
  t.same(listeners.map((l) => [l.key, l.protocol, l.servers.length]), [['0.0.0.0:80', 'http', 2], ['0.0.0.0:443', 'https', 1], ['0.0.0.0:9000', 'tcp', 1]]);
  const http = listeners[0]?.servers[0];
  t.same(http?.hosts, [{ namespace: '*', dnsName: '*.example.com' }, { namespace: 'istio-system', dnsName: 'internal.example.com' }]);
  t.equal(http?.httpsRedirect, true);
  t.equal(http?.gateway, 'istio-system/web');
  const https = listeners[1]?.servers[0];
  t.same(https?.hosts, [{ namespace: 'shop', dnsName: 'a.example.com' }]);
  t.match(https?.tls, { mode: 'SIMPLE', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', certificate: { certPath: '/c.crt', keyPath: '/c.key', caPath: null } });
  t.same(diagnostics, []);
});

t.test('TLS settings: versions, ciphers, pins, unsupported modes, conflicts', async (t) => {
  const { listeners, diagnostics } = buildListenerPlans({
    proxyLabels: labels,
    credentialsDirectory: '/nonexistent',
    gateways: [
      gateway('a', {
        servers: [
          {
            port: { number: 443, protocol: 'HTTPS', name: 'https' },
            hosts: ['a.example.com'],
            tls: {
              mode: 'MUTUAL',
              serverCertificate: '/c.crt',
              privateKey: '/c.key',
              caCertificates: '/ca.crt',
              minProtocolVersion: 'TLSV1_3',
              cipherSuites: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'NOT-A-CIPHER', 'ecdhe-ecdsa-aes128-gcm-sha256'],
              verifyCertificateHash: ['AB:CD'],
              subjectAltNames: ['spiffe://cluster.local/ns/a/sa/b'],
            },
          },
          { port: { number: 8443, protocol: 'HTTPS', name: 'p' }, hosts: ['*'], tls: { mode: 'AUTO_PASSTHROUGH' } },
          { port: { number: 8444, protocol: 'HTTPS', name: 'q' }, hosts: ['*'], tls: { mode: 'SIMPLE', serverCertificate: '/c', privateKey: '/k', minProtocolVersion: 'TLSV1_3', maxProtocolVersion: 'TLSV1_2' } },
        ],
      }),
      gateway('b', { servers: [{ port: { number: 443, protocol: 'HTTP', name: 'h' }, hosts: ['*'] }] }),
    ],
  });
  t.equal(listeners.length, 1);
  t.match(listeners[0]?.servers[0]?.tls, {
    mode: 'MUTUAL',
    minVersion: 'TLSv1.3',
    cipherSuites: ['ECDHE-ECDSA-AES128-GCM-SHA256'],
    verifyCertificateHash: ['abcd'],
    certificate: { caPath: '/ca.crt' },
  });
  t.same(
    diagnostics.map((d) => [d.code, d.severity]),
    [
      ['MG0408', 'warning'],
      ['MG0408', 'warning'],
      ['MG0407', 'warning'],
      ['MG0402', 'error'],
      ['MG0405', 'error'],
    ],
  );
});

t.test('PASSTHROUGH servers (HTTPS or TLS) open a passthrough listener with no certificate; a TLS server that terminates opens a tls listener', async (t) => {
  const { listeners, diagnostics } = buildListenerPlans({
    proxyLabels: labels,
    credentialsDirectory: '/nonexistent',
    gateways: [
      gateway('a', {
        servers: [
          { port: { number: 8443, protocol: 'HTTPS', name: 'p' }, hosts: ['a.example.com'], tls: { mode: 'PASSTHROUGH' } },
          { port: { number: 8443, protocol: 'TLS', name: 'q' }, hosts: ['b.example.com'] },
          { port: { number: 9443, protocol: 'TLS', name: 'r' }, hosts: ['*'], tls: { mode: 'SIMPLE', serverCertificate: '/c', privateKey: '/k' } },
        ],
      }),
    ],
  });
  t.same(
    listeners.map((listener) => [listener.port, listener.protocol, listener.servers.map((server) => server.tls?.mode ?? null)]),
    [
      [8443, 'passthrough', [null, null]],
      [9443, 'tls', ['SIMPLE']],
    ],
  );
  t.same(diagnostics, []);
});

t.test('credentialName resolves both directory layouts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-creds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'nested'));
  for (const file of ['tls.crt', 'tls.key', 'ca.crt']) writeFileSync(join(dir, 'nested', file), '');
  writeFileSync(join(dir, 'flat.crt'), '');
  writeFileSync(join(dir, 'flat.key'), '');
  const server = (credentialName: string, port: number, mode: 'SIMPLE' | 'MUTUAL' = 'SIMPLE') => ({
    port: { number: port, protocol: 'HTTPS', name: `p${port}` },
    hosts: ['*'],
    tls: { mode, credentialName },
  });
  const { listeners, diagnostics } = buildListenerPlans({
    proxyLabels: {},
    credentialsDirectory: dir,
    gateways: [gateway('g', { servers: [server('nested', 1, 'MUTUAL'), server('flat', 2), server('missing', 3), server('flat', 4, 'MUTUAL')] })],
  });
  t.same(
    listeners.map((l) => l.servers[0]?.tls?.certificate),
    [
      { certPath: join(dir, 'nested', 'tls.crt'), keyPath: join(dir, 'nested', 'tls.key'), caPath: join(dir, 'nested', 'ca.crt') },
      { certPath: join(dir, 'flat.crt'), keyPath: join(dir, 'flat.key'), caPath: null },
    ],
  );
  t.same(diagnostics.map((d) => d.code), ['MG0406', 'MG0402']);
  t.match(diagnostics[0]?.message, /credential "missing" not found/);
  t.match(diagnostics[1]?.message, /MUTUAL needs caCertificates/);
});

t.test('settings not applied yet are reported, and the server is still served; unix binds are not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-creds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['rsa', 'ecdsa']) {
    writeFileSync(join(dir, `${name}.crt`), '');
    writeFileSync(join(dir, `${name}.key`), '');
  }
  const { listeners, diagnostics } = buildListenerPlans({
    proxyLabels: {},
    credentialsDirectory: dir,
    gateways: [
      gateway('g', {
        servers: [
          { port: { number: 443, protocol: 'HTTPS', name: 'https' }, hosts: ['*'], tls: { mode: 'MUTUAL', credentialNames: ['rsa', 'ecdsa'], caCertificates: '/ca.crt', caCrl: '/crl.pem' } },
          { port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts: ['*'], bind: 'unix:///var/run/gw.sock' },
        ],
      }),
    ],
  });
  t.same(listeners.map((l) => [l.key, l.servers[0]?.tls?.certificate.certPath]), [['0.0.0.0:443', join(dir, 'rsa.crt')]]);
  t.same(
    diagnostics.map((d) => [d.code, d.severity, d.field]),
    [
      ['MG0409', 'warning', 'spec.servers.0.tls.caCrl'],
      ['MG0409', 'warning', 'spec.servers.0.tls'],
      ['MG0407', 'warning', 'spec.servers.1.bind'],
    ],
  );
});
