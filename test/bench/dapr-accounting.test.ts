import { spawnSync } from 'node:child_process';
import http from 'node:http';
import t from 'tap';
import { IDLE_PART, OTHER_PART, STEAL_PART, accountWindow, medianAccount, parseCpuLines } from '../../bench/cpu-accounting.js';
import type { CpuSnapshot, CpuTicks } from '../../bench/cpu-accounting.js';
import { DeliveryLedger, RequestFramer, eventOf, throughputReport, whenDelivered } from '../../bench/dapr-delivery.js';
import { parsePublishers, parseWrkPublishReport, runFailure, startWrk } from '../../bench/dapr-throughput.js';
import type { WrkPublishReport } from '../../bench/dapr-throughput.js';
import { freePort } from '../helpers/ports.js';

const PROC_STAT = `cpu  300 0 100 1000 20 0 10 5 0 0
cpu0 100 0 50 500 10 0 5 2 0 0
cpu1 200 0 50 500 10 0 5 3 7 0
intr 12345
ctxt 678
`;

t.test('parseCpuLines: each cpuN line (not the sum), idle with iowait, steal apart, guest time not counted twice', async (t) => {
  const cpus = parseCpuLines(PROC_STAT);
  t.same([...cpus.keys()], [0, 1]);
  t.same(cpus.get(0), { total: 667, idle: 510, steal: 2 });
  t.same(cpus.get(1), { total: 768, idle: 510, steal: 3 }, 'guest (7) is inside user already');
});

function snapshot(processes: Record<string, number | null>, cpus: Record<number, CpuTicks>): CpuSnapshot {
  return { processes: new Map(Object.entries(processes)), cpus: new Map(Object.entries(cpus).map(([cpu, ticks]) => [Number(cpu), ticks])) };
}

t.test('accountWindow: named processes, then what they leave of the busy time, steal and idle, adding up to the capacity', async (t) => {
  // 100 ticks/s: one tick is 10 000 µs. Two CPUs over 1 s = 200 ticks = 2 000 000 µs; 1 000 messages.
  const before = snapshot({ A: 1_000_000, B: 500_000, gone: 10 }, { 0: { total: 1000, idle: 300, steal: 0 }, 1: { total: 2000, idle: 900, steal: 5 } });
  const after = snapshot({ A: 1_400_000, B: 800_000, gone: null }, { 0: { total: 1100, idle: 310, steal: 0 }, 1: { total: 2100, idle: 920, steal: 7 } });
  const account = accountWindow(before, after, 1000, new Map([['wrk', 100_000]]), 100);
  if (account === null) throw new Error('no account');
  t.equal(account.capacityUsPerMessage, 2000);
  const parts = Object.fromEntries(account.parts.map((part) => [part.label, part.usPerMessage]));
  t.same(parts, { A: 400, B: 300, gone: 0, wrk: 100, [OTHER_PART]: 880, [STEAL_PART]: 20, [IDLE_PART]: 300 });
  t.equal(Math.round(account.parts.reduce((sum, part) => sum + part.share, 0) * 1e9) / 1e9, 1, 'the shares add up to the whole');
  t.same(account.idleUsPerMessageByCpu, { 0: 100, 1: 200 });
  t.equal(accountWindow(before, { ...after, cpus: new Map() }, 1000), null, 'no /proc/stat: no account');
});

t.test('accountWindow never makes other negative when tick sampling disagrees', async (t) => {
  const before = snapshot({ A: 0 }, { 0: { total: 0, idle: 0, steal: 0 } });
  const after = snapshot({ A: 1_010_000 }, { 0: { total: 100, idle: 0, steal: 0 } });
  const other = accountWindow(before, after, 10, new Map(), 100)?.parts.find((part) => part.label === OTHER_PART);
  t.equal(other?.usPerMessage, 0);
});

t.test('medianAccount: the median of each part over the runs, runs without /proc left out', async (t) => {
  const run = (a: number, idle: number) => accountWindow(snapshot({ A: 0 }, { 0: { total: 0, idle: 0, steal: 0 } }), snapshot({ A: a }, { 0: { total: 100, idle, steal: 0 } }), 100, new Map(), 100);
  const median = medianAccount([run(100_000, 10), null, run(300_000, 30), run(200_000, 50)]);
  t.equal(median?.parts.find((part) => part.label === 'A')?.usPerMessage, 2000);
  t.equal(median?.parts.find((part) => part.label === IDLE_PART)?.usPerMessage, 3000);
  t.equal(medianAccount([null]), null);
});

t.test('DeliveryLedger counts each id once, duplicates and strays apart, and names the missing ones', async (t) => {
  const ledger = new DeliveryLedger(1, 5);
  t.equal(ledger.record(1), true);
  t.equal(ledger.record(1), false);
  t.equal(ledger.record(6), false);
  t.equal(ledger.record(0), false);
  t.equal(ledger.record(3), true);
  t.same({ lost: ledger.lost, duplicated: ledger.duplicated, unexpected: ledger.unexpected, complete: ledger.complete }, { lost: 3, duplicated: 1, unexpected: 2, complete: false });
  t.same(ledger.missing(2), [2, 4]);
  for (const n of [2, 4, 5]) ledger.record(n);
  t.equal(ledger.complete, true);
  t.same(throughputReport(ledger, 2), { messages: 5, seconds: 2, messagesPerSecond: 2.5, lost: 0, duplicated: 1, unexpected: 2, missing: [] });
});

t.test('whenDelivered resolves at completion, or after a stall without new events', async (t) => {
  const ledger = new DeliveryLedger(1, 2);
  const waiter = whenDelivered(ledger, 60_000, 60_000);
  ledger.record(1);
  waiter.arrived();
  ledger.record(2);
  waiter.arrived();
  await waiter.done;
  const stalled = new DeliveryLedger(1, 2);
  const started = Date.now();
  await whenDelivered(stalled, 60_000, 300).done;
  t.ok(Date.now() - started < 30_000, 'a stall ends the wait long before the deadline');
  t.equal(stalled.lost, 2);
});

const delivery = (n: number, extraHeader = ''): string => {
  const body = JSON.stringify({ specversion: '1.0', id: `e${n}`, data: { run: 'r1', n } });
  return `POST /bench HTTP/1.1\r\nhost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeader}content-type: application/cloudevents+json\r\n\r\n${body}`;
};

t.test('RequestFramer: pipelined requests, a request split anywhere, content-length in any case', async (t) => {
  const stream = Buffer.from(delivery(1) + delivery(2) + 'GET /dapr/subscribe HTTP/1.1\r\nhost: x\r\n\r\n' + delivery(3));
  const whole = new RequestFramer().push(stream);
  t.same(
    whole.map((request) => [request.method, request.path, request.body.length > 0 ? eventOf(request.body)?.n : null]),
    [['POST', '/bench', 1], ['POST', '/bench', 2], ['GET', '/dapr/subscribe', null], ['POST', '/bench', 3]],
  );
  for (let cut = 1; cut < stream.length; cut += 7) {
    const framer = new RequestFramer();
    const ids = [...framer.push(stream.subarray(0, cut)), ...framer.push(stream.subarray(cut))].map((request) => (request.body.length > 0 ? eventOf(request.body)?.n : 0));
    t.same(ids, [1, 2, 0, 3], `cut at ${cut}`);
  }
  t.throws(() => new RequestFramer().push(Buffer.from('POST /bench HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n')), /content-length bodies only/);
});

t.test('eventOf reads the published event out of the CloudEvent, null for other data', async (t) => {
  t.same(eventOf(Buffer.from('{"data":{"run":"r","n":7},"id":"x"}')), { run: 'r', n: 7 });
  t.equal(eventOf('{"data":"text"}'), null);
  t.equal(eventOf('{"id":"x"}'), null);
});

const WRK_REPORT: WrkPublishReport = { sent: 100, answered: 100, failed: 0, firstFailure: '', socketErrors: 0, cpuTicks: 12 };

t.test('parseWrkPublishReport takes the JSON line of done() among wrk`s own output', async (t) => {
  const output = `Running 2m test @ http://127.0.0.1:1/x\n  1 threads and 64 connections\nanswered\n  100 requests in 1.00s\n${JSON.stringify(WRK_REPORT)}\n`;
  t.same(parseWrkPublishReport(output), WRK_REPORT);
  t.throws(() => parseWrkPublishReport('Running 2m test\n'), /no report/);
});

t.test('runFailure: a lost event, a stray id, a publish not answered 204 or a socket error fails the run', async (t) => {
  const clean = throughputReport(Object.assign(new DeliveryLedger(1, 100), {}), 1);
  const complete = { ...clean, lost: 0, messagesPerSecond: 100, missing: [] };
  t.equal(runFailure(complete, WRK_REPORT), null);
  t.equal(runFailure({ ...complete, duplicated: 3 }, null), null, 'duplicates are counted, not a failure (at-least-once)');
  t.match(runFailure({ ...complete, lost: 2, missing: [17, 42] }, null), /2 of 100 events lost \(first missing ids 17, 42\)/);
  t.match(runFailure({ ...complete, unexpected: 1 }, null), /1 events with ids outside/);
  t.match(runFailure(complete, { ...WRK_REPORT, failed: 1, firstFailure: '500 boom' }), /1 publishes not answered 204 \(first: 500 boom\)/);
  t.match(runFailure(complete, { ...WRK_REPORT, answered: 99 }), /wrk sent 100 and got 99 answers/);
  t.match(runFailure(complete, { ...WRK_REPORT, socketErrors: 4 }), /4 socket errors/);
});

t.test('parsePublishers: wrk by default, node without wrk, an explicit ordered list', async (t) => {
  t.same(parsePublishers(undefined, true), ['wrk']);
  t.same(parsePublishers('', false), ['node']);
  t.same(parsePublishers('node, wrk', true), ['node', 'wrk']);
  t.throws(() => parsePublishers('wrk,wrk', true), /distinct/);
  t.throws(() => parsePublishers('ab', true), /distinct/);
  t.throws(() => parsePublishers('wrk', false), /not installed/);
});

const wrkInstalled = spawnSync('wrk', ['-v'], { stdio: 'ignore' }).error === undefined;

t.test('bench/dapr-publish.lua publishes ids 1…N exactly once each with 64 connections, then wrk ends', { skip: wrkInstalled ? false : 'wrk not installed' }, async (t) => {
  const counts = new Map<number, number>();
  let contentType = '';
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      contentType = request.headers['content-type'] ?? '';
      const { run, n } = JSON.parse(Buffer.concat(chunks).toString()) as { run: string; n: number };
      if (run === 'run-7' && request.method === 'POST' && request.url === '/v1.0/publish/events/topic-a') counts.set(n, (counts.get(n) ?? 0) + 1);
      response.statusCode = 204;
      response.end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const messages = 3000;
  const report = await startWrk({ enabled: false, note: null }, { appPort: 0, sidecarPort: port, topic: 'topic-a', processes: [], leanAppCpu: 1 }, 'run-7', messages, AbortSignal.timeout(60_000)).done;
  t.same({ ...report, cpuTicks: 0 }, { sent: messages, answered: messages, failed: 0, firstFailure: '', socketErrors: 0, cpuTicks: 0 });
  t.ok(report.cpuTicks >= 0, 'wrk read its own CPU');
  t.equal(contentType, 'application/json');
  t.equal(counts.size, messages, 'every id arrived');
  t.same([Math.min(...counts.keys()), Math.max(...counts.keys())], [1, messages], 'ids 1…N, none skipped');
  t.ok([...counts.values()].every((count) => count === 1), 'none twice');
});
