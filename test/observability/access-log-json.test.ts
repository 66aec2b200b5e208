import t from 'tap';
import { formatJson } from '../../plugins/access-log/record.js';
import type { AccessLogRecord } from '../../plugins/access-log/record.js';

const record: AccessLogRecord = {
  start_time: '2026-01-01T00:00:00.000Z',
  method: 'GET',
  authority: 'api.example.com',
  path: '/items/1',
  protocol: 'HTTP/1.1',
  response_code: 200,
  response_flags: '-',
  response_code_details: 'via_upstream',
  route_name: 'items',
  upstream_cluster: 'outbound|80||items.default.svc.cluster.local',
  upstream_host: '10.0.0.1:80',
  duration_ms: 3,
  upstream_service_time_ms: 2,
  bytes_received: 120,
  bytes_sent: 450,
  request_id: 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
  trace_id: null,
  downstream_remote_address: '[::1]:50000',
  downstream_local_address: '127.0.0.1:8080',
  requested_server_name: null,
  peer_principal: 'spiffe://cluster.local/ns/default/sa/client',
  request_principal: null,
  user_agent: 'curl/8',
  x_forwarded_for: null,
};

t.test('a plain record is the same line JSON.stringify writes', async (t) => {
  t.equal(formatJson(record), `${JSON.stringify(record)}\n`);
});

t.test('values JSON must escape are escaped exactly as JSON.stringify does', async (t) => {
  const hostile: AccessLogRecord = {
    ...record,
    path: '/a"b\\c',
    user_agent: 'evil\n{"forged":true}\u0000\u001f',
    x_forwarded_for: 'lone \ud800 surrogate, pair \ud83d\ude00',
    upstream_service_time_ms: null,
    truncated_fields: ['user_agent', 'path'],
  };
  const line = formatJson(hostile);
  t.equal(line, `${JSON.stringify(hostile)}\n`);
  t.same(JSON.parse(line), hostile, 'one parseable line');
  t.equal(line.indexOf('\n'), line.length - 1, 'no line break inside the record');
});

t.test('a field keeps being escaped right when its value changes from one line to the next', async (t) => {
  // start_time, protocol, response_flags and trace_id are built by meshgate from characters JSON never escapes.
  const clientOrConfigFields = ['method', 'authority', 'path', 'response_code_details', 'route_name', 'upstream_cluster', 'upstream_host', 'request_id',
    'downstream_remote_address', 'downstream_local_address', 'requested_server_name', 'peer_principal', 'request_principal', 'user_agent', 'x_forwarded_for'] as const;
  const sequence = ['plain', 'quote"and\\slash', 'plain', null, 'line\nbreak', 'line\nbreak', 'plain'];
  let mismatches = 0;
  for (const field of clientOrConfigFields) {
    for (const value of sequence) {
      if (value === null && (field === 'method' || field === 'authority' || field === 'path' || field === 'request_id' || field === 'response_code_details' || field.startsWith('downstream'))) continue;
      const varied = { ...record, [field]: value } as AccessLogRecord;
      if (formatJson(varied) !== `${JSON.stringify(varied)}\n`) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});
