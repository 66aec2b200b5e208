import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { afterResponseHook, runPendingAfterResponse } from '../../gateway/pipeline/after-response.js';
import type { AfterResponseStep } from '../../gateway/pipeline/after-response.js';

interface FakeRequest {
  readonly url: string;
  readonly mesh: { startMs: number; responseEndMs: number };
  readonly log: { error(details: unknown, message: string): void };
}

const logged: string[] = [];

function fakeRequest(url: string): FakeRequest {
  return { url, mesh: { startMs: performance.now(), responseEndMs: NaN }, log: { error: (_details, message) => logged.push(`${url}: ${message}`) } };
}

const REPLY = {} as FastifyReply;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Calls `hook` for each request as fastify would at response end; resolves once every `done` was called. */
function respond(hook: ReturnType<typeof afterResponseHook>, requests: readonly FakeRequest[]): number {
  let done = 0;
  for (const request of requests) hook(request as unknown as FastifyRequest, REPLY, () => done++);
  return done;
}

t.test('a turn\'s responses are handled together after it, in order, with the time each response ended', async (t) => {
  const ran: string[] = [];
  const hook = afterResponseHook({ applies: (request) => request.url !== '/skip', run: (request) => ran.push(request.url) });
  const requests = ['/a', '/skip', '/b'].map(fakeRequest);
  t.equal(respond(hook, requests), 3, 'the hook never holds the response pipeline');
  t.same(ran, [], 'nothing runs between two responses');
  const endedAt = requests.map((request) => request.mesh.responseEndMs);
  t.ok(!Number.isNaN(endedAt[0]) && !Number.isNaN(endedAt[2]), 'the end time is taken at response end');
  t.ok(Number.isNaN(endedAt[1]), 'a request the step does not apply to is left alone');
  await nextTurn();
  t.same(ran, ['/a', '/b']);
  t.same(requests.map((request) => request.mesh.responseEndMs), endedAt, 'the batch does not move the end times');
});

t.test('a step that throws is logged and the rest of its batch still runs', async (t) => {
  const ran: string[] = [];
  const step: AfterResponseStep = {
    applies: () => true,
    run(request) {
      if (request.url === '/bad') throw new Error('broken');
      ran.push(request.url);
    },
  };
  respond(afterResponseHook(step), ['/bad', '/good'].map(fakeRequest));
  await nextTurn();
  t.same(ran, ['/good']);
  t.same(logged, ['/bad: after-response step failed']);
});

t.test('pending batches can be run at once (flush, shutdown), and only once', async (t) => {
  const ran: string[] = [];
  const first = afterResponseHook({ applies: () => true, run: (request) => ran.push(`first ${request.url}`) });
  const second = afterResponseHook({ applies: () => true, run: (request) => ran.push(`second ${request.url}`) });
  respond(first, [fakeRequest('/1')]);
  respond(second, [fakeRequest('/2')]);
  runPendingAfterResponse();
  t.same(ran, ['first /1', 'second /2']);
  await nextTurn();
  t.same(ran, ['first /1', 'second /2'], 'the scheduled batches find nothing left to do');
  respond(first, [fakeRequest('/3')]);
  await nextTurn();
  t.same(ran, ['first /1', 'second /2', 'first /3'], 'the next turn batches again');
});

/** Runs in a child process, with a heap of its own (the test runner churns a little of its own). */
const CHURN_CHILD = `
import { getHeapSpaceStatistics } from 'node:v8';
const { afterResponseHook } = await import(process.argv[1]);
const turns = 20000;
const hook = afterResponseHook({ applies: () => true, run: () => {} });
const request = { mesh: { responseEndMs: NaN }, log: { error() {} } };
const oldSpaceUsed = () => getHeapSpaceStatistics().find((space) => space.space_name === 'old_space').space_used_size;
const growthPerTurn = async (respondEachTurn) => {
  gc();
  const before = oldSpaceUsed();
  for (let turn = 0; turn < turns; turn++) {
    if (respondEachTurn) hook(request, {}, () => {});
    await new Promise((resolve) => setImmediate(resolve));
  }
  return (oldSpaceUsed() - before) / turns;
};
const baseline = await growthPerTurn(false);
const batching = await growthPerTurn(true);
console.log(JSON.stringify({ baseline, batching }));
`;

t.test('batching a response per turn leaves nothing for the old generation', async (t) => {
  // A long-lived Set or Map with an entry added and deleted every turn gets its table reallocated in
  // the old generation: garbage that only a full collection frees (~110 bytes a turn on Node 20 and 24).
  const module = new URL('../../gateway/pipeline/after-response.js', import.meta.url).href;
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHURN_CHILD, module], { timeout: 60_000 });
  const { baseline, batching } = JSON.parse(stdout) as { baseline: number; batching: number };
  t.ok(batching - baseline < 40, `the old generation grew ${batching.toFixed(1)} bytes a turn with a response each turn, ${baseline.toFixed(1)} without (at most 40 more)`);
});
