import t from 'tap';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { afterResponseHook, runPendingAfterResponse } from '../../gateway/pipeline/after-response.js';
import type { AfterResponseStep } from '../../gateway/pipeline/after-response.js';
import { oldGenerationGrowthPerTurn } from '../helpers/old-generation.js';

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

t.test('batching a response per turn leaves nothing for the old generation', async (t) => {
  // A module-level Set with the turn's batch added and deleted every turn left ~110 bytes a turn there.
  const module = new URL('../../gateway/pipeline/after-response.js', import.meta.url).href;
  const { baseline, acting } = await oldGenerationGrowthPerTurn(
    module,
    `return { hook: subject.afterResponseHook({ applies: () => true, run: () => {} }), request: { mesh: { responseEndMs: NaN }, log: { error() {} } } };`,
    `context.hook(context.request, {}, () => {});`,
  );
  t.ok(acting - baseline < 40, `the old generation grew ${acting.toFixed(1)} bytes a turn with a response each turn, ${baseline.toFixed(1)} without (at most 40 more)`);
});
