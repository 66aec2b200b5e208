import t from 'tap';
import { DAPR_PUBSUB_RABBITMQ, DAPR_PUBSUB_REDIS } from '../../bench/dapr-bench.js';
import type { DaprResults, PubSubResult, Spread } from '../../bench/dapr-bench.js';
import { computeBars, pairedRatio } from '../../bench/bars.js';
import type { BarInputs } from '../../bench/bars.js';
import { parseWrkOutput } from '../../bench/load-generator.js';
import { summarize } from '../../bench/report.js';
import type { Sample } from '../../bench/report.js';
import { ALL_TARGETS } from '../../bench/suites.js';

function inputs(summaries: BarInputs['summaries'], options: Partial<BarInputs> = {}): BarInputs {
  return { summaries, components: new Map(), saturationMode: 'sat', unloadedMode: 'c1', latencyResolutionUs: 1, ...options };
}

function sample(round: number, requestsPerSecond: number, proxyCpuUsPerRequest: number, p50Us = 100): Sample {
  return { round, requests: requestsPerSecond * 3, requestsPerSecond, p50Us, p90Us: p50Us, p99Us: p50Us, p999Us: p50Us, non2xx: 0, socketErrors: 0, proxyCpuUsPerRequest, upstreamCpuUsPerRequest: 10, proxyPeakRssBytes: null };
}

t.test('pairedRatio: the median of per-round ratios, pairing rounds by number and skipping unpaired ones', async (t) => {
  const measured = new Map([[1, 90], [2, 50], [3, 99], [4, 10]]);
  const reference = new Map([[1, 100], [2, 100], [3, 100]]);
  t.same(pairedRatio(measured, reference), { ratio: 0.9, perRound: [0.9, 0.5, 0.99] });
  t.equal(pairedRatio(new Map([[1, 5]]), new Map([[2, 5]])), null, 'nothing paired: no ratio');
});

t.test('the policies bar judges the median of the per-round CPU ratios, and prints them', async (t) => {
  const http = summarize([sample(1, 20000, 30), sample(2, 15000, 40), sample(3, 15000, 40)]);
  const policies = summarize([sample(1, 19000, 42), sample(2, 19000, 42), sample(3, 14000, 31.5)]);
  const summaries = new Map([
    ['meshgate-http', new Map([['sat', http]])],
    ['meshgate-policies-50', new Map([['sat', policies]])],
  ]);
  const bar = computeBars(inputs(summaries)).find((entry) => entry.name.startsWith('meshgate-policies-50'));
  t.equal(bar?.measured, 'one after the other +5.0 % (rounds 1.40, 1.05, 0.79)');
  t.equal(bar?.pass, true);
  const worse = summarize([sample(1, 19000, 42), sample(2, 19000, 46), sample(3, 14000, 46)]);
  const failing = computeBars(inputs(new Map([...summaries, ['meshgate-policies-50', new Map([['sat', worse]])]])));
  t.equal(failing.find((entry) => entry.name.startsWith('meshgate-policies-50'))?.pass, false, 'a median of +15 % fails');
});

t.test('a side-by-side measurement, when the run made one, decides the bar; the rounds are still printed', async (t) => {
  const http = summarize([sample(1, 20000, 40)]);
  const policies = summarize([sample(1, 19000, 42)]);
  const summaries = new Map([
    ['meshgate-http', new Map([['sat', http]])],
    ['meshgate-policies-50', new Map([['sat', policies]])],
  ]);
  const together = { reference: 'meshgate-http', measured: 'meshgate-policies-50', cpuRatios: [1.12, 1.2, 1.15], throughputRatios: [0.9, 0.85, 0.88], referenceCpuUsPerRequest: [40, 40, 40], measuredCpuUsPerRequest: [44.8, 48, 46] };
  const bar = computeBars(inputs(summaries, { sideBySide: [together] })).find((entry) => entry.name.startsWith('meshgate-policies-50'));
  t.equal(bar?.measured, '+15.0 % side by side (1.12, 1.20, 1.15); one after the other +5.0 % (rounds 1.05)');
  t.equal(bar?.pass, false, 'judged on the side-by-side median, not on the passing rounds');
});

t.test('latency bars fail as not measurable with a millisecond-resolution load generator', async (t) => {
  const direct = summarize([sample(1, 20000, 0, 0)]);
  const pair = summarize([sample(1, 5000, 80, 0)]);
  const summaries = new Map([
    ['direct', new Map([['c1', direct]])],
    ['mesh-sidecar-pair', new Map([['c1', pair]])],
  ]);
  const [latency] = computeBars(inputs(summaries, { latencyResolutionUs: 1_000 })).filter((entry) => entry.name.includes('p50 unloaded'));
  t.equal(latency?.pass, false);
  t.match(latency?.measured, /not measurable/);
  const [measured] = computeBars(inputs(summaries)).filter((entry) => entry.name.includes('p50 unloaded'));
  t.equal(measured?.pass, true, 'the same +0 us passes when the generator resolves microseconds');
});

t.test('every compared target runs right after its reference within a round', async (t) => {
  const order = ALL_TARGETS.map((target) => target.name);
  const after = (target: string, reference: string): boolean => order.indexOf(target) > order.indexOf(reference);
  t.ok(after('meshgate-http', 'bare-fastify'));
  t.equal(order.indexOf('meshgate-policies-50'), order.indexOf('meshgate-http') + 1);
  t.equal(order.indexOf('meshgate-observability'), order.indexOf('meshgate-quiet') + 1);
});

t.test('the user-plugin bar judges the added CPU per request in microseconds, side by side when measured so', async (t) => {
  const http = summarize([sample(1, 20000, 40), sample(2, 20000, 41)]);
  const withPlugin = summarize([sample(1, 19800, 41.5), sample(2, 19800, 44)]);
  const summaries = new Map([
    ['meshgate-http', new Map([['sat', http]])],
    ['meshgate-user-plugin-noop', new Map([['sat', withPlugin]])],
  ]);
  const rounds = computeBars(inputs(summaries)).find((entry) => entry.name.startsWith('meshgate-user-plugin-noop'));
  t.equal(rounds?.measured, '+2.25 us/req one after the other (rounds 1.50, 3.00)');
  t.equal(rounds?.pass, false);
  const together = { reference: 'meshgate-http', measured: 'meshgate-user-plugin-noop', cpuRatios: [1.02, 1.03, 1.01], throughputRatios: [1, 1, 1], referenceCpuUsPerRequest: [40, 40, 41], measuredCpuUsPerRequest: [40.8, 41.2, 41.4] };
  const sideBySide = computeBars(inputs(summaries, { sideBySide: [together] })).find((entry) => entry.name.startsWith('meshgate-user-plugin-noop'));
  t.equal(sideBySide?.measured, '+0.80 us/req side by side (0.80, 1.20, 0.40)');
  t.equal(sideBySide?.pass, true);
});

t.test('the Dapr bars judge the medians of the dapr suite, and a lost message fails the throughput bar', async (t) => {
  const spread = (median: number): Spread => ({ median, min: median * 0.9, max: median * 1.1 });
  const pubsub = (name: string, rate: number, lost: number): PubSubResult => ({
    name,
    publisher: 'wrk',
    latencyP50Ms: 2.5,
    latencyP99Ms: 9,
    messagesPerSecond: spread(rate),
    publisherCpuUsPerMessage: null,
    subscriberCpuUsPerMessage: null,
    lost,
    duplicated: 0,
    runs: [],
    cpu: null,
    cpuRuns: [],
  });
  const dapr: DaprResults = {
    pubsub: [pubsub(DAPR_PUBSUB_REDIS, 6000, 0), pubsub(DAPR_PUBSUB_RABBITMQ, 6000, 3)],
    sideBySide: [],
    state: { name: 'dapr-state-get', addedP50Us: spread(160), sidecarP50Us: spread(260), directP50Us: spread(100), sidecarCpuUsPerGet: 40, runs: [] },
  };
  const verdicts = new Map(computeBars(inputs(new Map(), { dapr })).map((entry) => [entry.name, entry.pass]));
  const verdict = (fragment: string): boolean | null | undefined => [...verdicts].find(([name]) => name.includes(fragment))?.[1];
  t.equal(verdict('Dapr state GET'), false, '+160 us is over the +150 us bar');
  t.equal(verdict('publish → delivery p50'), true, '2.5 ms is within 3 ms');
  t.equal(verdict(`${DAPR_PUBSUB_REDIS}: >=`), true, '6000 msg/s and nothing lost');
  t.equal(verdict(`${DAPR_PUBSUB_RABBITMQ}: >=`), false, 'fast enough, but 3 messages lost');
  const unmeasured = computeBars(inputs(new Map())).filter((entry) => entry.name.includes('Dapr') || entry.name.includes('dapr-'));
  t.ok(unmeasured.length === 4 && unmeasured.every((entry) => entry.pass === null), 'without the dapr suite the four bars are n/a');
});

t.test('the tail bars judge unloaded p99.9 against bare fastify by the median of the per-round ratios', async (t) => {
  const withTail = (round: number, p999Us: number): Sample => ({ ...sample(round, 5000, 50), p999Us });
  const bare = summarize([withTail(1, 1000), withTail(2, 2000), withTail(3, 1000)]);
  const http = summarize([withTail(1, 1500), withTail(2, 5000), withTail(3, 1900)]);
  const summaries = new Map([
    ['bare-fastify', new Map([['c1', bare]])],
    ['meshgate-http', new Map([['c1', http]])],
  ]);
  const bar = computeBars(inputs(summaries)).find((entry) => entry.name.startsWith('meshgate-http unloaded p99.9'));
  t.equal(bar?.pass, true, 'rounds 1.5, 2.5, 1.9: median 1.9');
  t.match(bar?.measured, /^1\.90x .*rounds 1\.50, 2\.50, 1\.90/);
  const worse = summarize([withTail(1, 2500), withTail(2, 5000), withTail(3, 1900)]);
  const failing = computeBars(inputs(new Map([...summaries, ['meshgate-http', new Map([['c1', worse]])]])));
  t.equal(failing.find((entry) => entry.name.startsWith('meshgate-http unloaded p99.9'))?.pass, false, 'a median of 2.5x fails');
  t.equal(failing.find((entry) => entry.name.startsWith('meshgate-https unloaded p99.9'))?.pass, null, 'not measured: n/a');
});

t.test('wrk output with the p99.9 line of bench/wrk-latency.lua parses to microseconds', async (t) => {
  const output = [
    '  Latency Distribution',
    '     50%  210.00us',
    '     75%  250.00us',
    '     90%  300.00us',
    '     99%    1.20ms',
    '  12000 requests in 3.00s, 2.00MB read',
    'Requests/sec:   4000.00',
    'p99.9 latency: 4567us',
  ].join('\n');
  const result = parseWrkOutput(output);
  t.same([result.p50Us, result.p90Us, result.p99Us, result.p999Us, result.requests], [210, 300, 1200, 4567, 12000]);
  t.throws(() => parseWrkOutput(output.replace(/p99\.9.*/, '')), /no p99\.9 line/);
});

t.test('the memory bars judge the median over fresh process sets, idle and after the warm-up, for each proxy', async (t) => {
  const MB = 1_048_576;
  const reading = (idleMb: number, afterMb: number) => ({ idleRssBytes: idleMb * MB, afterRssBytes: afterMb * MB, peakRssBytes: afterMb * MB, restedRssBytes: null, warmupRequestsPerSecond: 1000, warmupFailures: 0 });
  const memory = [
    { 'sidecar B (server side, CPU 1)': reading(58, 69), 'ingress (CPU 0)': reading(61, 72) },
    { 'sidecar B (server side, CPU 1)': reading(62, 71), 'ingress (CPU 0)': reading(59, 68) },
    { 'sidecar B (server side, CPU 1)': reading(59, 70), 'ingress (CPU 0)': reading(62, 75) },
  ];
  const bars = computeBars(inputs(new Map(), { memory }));
  const find = (prefix: string) => bars.find((entry) => entry.name.startsWith(prefix));
  t.equal(find('idle sidecar B')?.pass, true, 'median 59 MB');
  t.equal(find('idle sidecar B')?.measured, '59.0 MB (58.0-62.0)');
  t.equal(find('sidecar B (server side, CPU 1) RSS after')?.pass, true, 'median 70 MB');
  t.equal(find('idle ingress')?.pass, false, 'median 61 MB');
  t.equal(find('ingress (CPU 0) RSS after')?.pass, false, 'median 72 MB');
  t.equal(find('idle sidecar A')?.pass, null, 'not measured: n/a');
});

t.test('workers: 2 against 1 by round; throughput judged only where the load generator has cores of its own', async (t) => {
  const one = summarize([sample(1, 4000, 100), sample(2, 5000, 100), sample(3, 4000, 100)]);
  const two = summarize([sample(1, 7600, 103), sample(2, 9500, 104), sample(3, 7000, 110)]);
  const summaries = new Map([
    ['meshgate-workers-1', new Map([['sat', one]])],
    ['meshgate-workers-2', new Map([['sat', two]])],
  ]);
  const workerConnections = new Map([['meshgate-workers-2', [[27, 25], [30, 22]]]]);
  const find = (bars: readonly { name: string; pass: boolean | null; measured: string }[], start: string) => bars.find((entry) => entry.name.startsWith(start));
  const onTwoCpus = computeBars(inputs(summaries, { workerConnections, cpuCount: 2 }));
  const throughput = find(onTwoCpus, 'meshgate-workers-2 throughput');
  t.equal(throughput?.pass, null, 'printed, not judged, on 2 CPUs');
  t.match(throughput?.measured, /^1\.90x \(rounds 1\.90, 1\.90, 1\.75\); not judged on 2 CPUs/);
  t.equal(find(computeBars(inputs(summaries, { workerConnections, cpuCount: 8 })), 'meshgate-workers-2 throughput')?.pass, true, 'judged with cores to spare');
  const cpu = find(onTwoCpus, 'meshgate-workers-2: proxy CPU');
  t.equal(cpu?.measured, 'one after the other +4.0 % (rounds 1.03, 1.04, 1.10)');
  t.equal(cpu?.pass, true);
  const spread = find(onTwoCpus, 'meshgate-workers-2: each worker');
  t.equal(spread?.measured, 'largest deviation 15 % (27 / 25; 30 / 22)');
  t.equal(spread?.pass, true);
  const uneven = find(computeBars(inputs(summaries, { workerConnections: new Map([['meshgate-workers-2', [[27, 25], [40, 12]]]]) })), 'meshgate-workers-2: each worker');
  t.equal(uneven?.pass, false, 'one round at 40 / 12 fails');
});

t.test('one HTTP hop: judged on meshgate-http, with what node:http + undici alone added in the same run beside it', async (t) => {
  const summaries = new Map([
    ['direct', new Map([['c1', summarize([sample(1, 20000, 0, 40)])]])],
    ['node-floor-http', new Map([['c1', summarize([sample(1, 5000, 90, 120)])]])],
    ['meshgate-http', new Map([['c1', summarize([sample(1, 5000, 100, 125)])]])],
  ]);
  const hop = computeBars(inputs(summaries)).find((entry) => entry.name.startsWith('meshgate-http adds'));
  t.equal(hop?.measured, '+85 us (node-floor-http +80 us)');
  t.equal(hop?.pass, true);
});

t.test('the sidecar pair: judged on the pair, with what two node:http(s) + undici hops alone added in the same run beside it', async (t) => {
  const summaries = new Map([
    ['direct', new Map([['c1', summarize([sample(1, 20000, 0, 40)])]])],
    ['node-floor-pair', new Map([['c1', summarize([sample(1, 4000, 90, 230)])]])],
    ['mesh-sidecar-pair', new Map([['c1', summarize([sample(1, 3000, 100, 400)])]])],
  ]);
  const pair = computeBars(inputs(summaries)).find((entry) => entry.name.startsWith('mesh-sidecar-pair adds'));
  t.equal(pair?.measured, '+360 us (node-floor-pair +190 us)');
  t.equal(pair?.pass, false, 'the floor is printed, not judged: the pair itself is over +180 us');
});

t.test('the reload bar judges the p99 of requests in flight during reloads against the quiet p99 of the same run', async (t) => {
  const stall = (reloadingP99Ms: number) => ({
    quiet: { requests: 10_000, p50Ms: 0.5, p99Ms: 6, maxMs: 60 },
    reloading: { requests: 1_000, p50Ms: 1, p99Ms: reloadingP99Ms, maxMs: 20 },
    reloadMs: [120, 100],
  });
  const verdict = (reloadStall: BarInputs['reloadStall']) => computeBars(inputs(new Map(), { reloadStall })).find((entry) => entry.name.includes('in flight during a reload'));
  t.equal(verdict(stall(11.9))?.pass, true, '1.98x the quiet p99');
  t.equal(verdict(stall(12.1))?.pass, false, '2.02x the quiet p99');
  t.match(verdict(stall(9))?.measured, /^1\.50x: p99 9\.00 vs 6\.00 ms; p50 1\.00 vs 0\.50 ms; max 20\.00 vs 60\.00 ms/);
  t.equal(verdict(null)?.pass, null, 'not measured without the 10 000-rule target');
});
