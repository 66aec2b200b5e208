import t from 'tap';
import { DurationError, durationProblem, parseDuration } from '../../gateway/config/duration.js';
import { formatDiagnostics } from '../../gateway/config/format.js';
import type { Diagnostic } from '../../gateway/config/resource.js';

t.test('parseDuration accepts protobuf and Go-style durations', async (t) => {
  const cases: [string, number][] = [
    ['0', 0], ['0s', 0], ['1.5s', 1500], ['250ms', 250], ['1m', 60_000], ['1h', 3_600_000], ['1h30m', 5_400_000],
    ['2.5us', 0.0025], ['100ns', 0.0001], ['.5s', 500], ['10s', 10_000],
  ];
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, text);
});

t.test('parseDuration rejects with a reason', async (t) => {
  for (const [text, reason] of [
    ['', /empty/], ['10', /missing unit/], ['-1s', /negative/], ['1x', /unexpected "1x"/], ['1s 2s', /unexpected " 2s"/],
    ['s', /unexpected/], ['99999999999999h', /maximum/],
  ] as const) {
    t.match(durationProblem(text), reason, JSON.stringify(text));
    t.throws(() => parseDuration(text), DurationError);
  }
});

t.test('formatDiagnostics', async (t) => {
  const diagnostics: Diagnostic[] = [
    { code: 'MG0203', severity: 'error', message: 'no subset', position: { file: 'a.yaml', line: 3, col: 5 }, kind: 'VirtualService', namespace: 'shop', name: 'web', field: 'spec.http[0]' },
    { code: 'MG0213', severity: 'warning', message: 'unknown host', position: { file: 'a.yaml', line: 9, col: 1 }, kind: 'DestinationRule', namespace: 'default', name: 'db' },
    { code: 'MG0002', severity: 'error', message: 'bad yaml', position: { file: 'b.yaml', line: 1, col: 2 } },
  ];
  t.equal(
    formatDiagnostics(diagnostics, 'text'),
    [
      'a.yaml:3:5 MG0203 VirtualService shop/web: spec.http[0]: no subset',
      'a.yaml:9:1 MG0213 DestinationRule default/db: warning: unknown host',
      'b.yaml:1:2 MG0002: bad yaml',
      '2 errors, 1 warning',
      '',
    ].join('\n'),
  );
  t.same(JSON.parse(formatDiagnostics(diagnostics, 'json')), diagnostics);
  t.equal(formatDiagnostics([], 'text'), '0 errors, 0 warnings\n');
});
