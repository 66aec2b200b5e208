import t from 'tap';
import { PublishDeadlines } from '../../gateway/dapr/pubsub/publish-deadlines.js';
import { oldGenerationGrowthPerTurn } from '../helpers/old-generation.js';

t.test('an unanswered publish fails after the deadline, answered ones keep their outcome', async (t) => {
  const deadlines = new PublishDeadlines(50, 10);
  const never = new Promise<void>(() => {});
  const started = performance.now();
  const stuck = deadlines.within(never, 'publishing to p/t');
  t.equal(await deadlines.within(Promise.resolve('ok'), 'a'), 'ok');
  await t.rejects(deadlines.within(Promise.reject(new Error('broker said no')), 'b'), /broker said no/);
  t.equal(deadlines.size, 1, 'only the unanswered publish is still waiting');
  await t.rejects(stuck, /publishing to p\/t: no answer from the broker within 50 ms/);
  t.ok(performance.now() - started >= 50, 'not before the deadline');
  t.equal(deadlines.size, 0);
});

t.test('publishes answered out of order leave the others waiting, and the rest expire oldest first', async (t) => {
  const deadlines = new PublishDeadlines(60, 5);
  const answers: ((value: string) => void)[] = [];
  const outcomes: string[] = [];
  const publishes = ['first', 'second', 'third', 'fourth', 'fifth'].map((what) => {
    const answered = new Promise<string>((resolve) => answers.push(resolve));
    return deadlines.within(answered, what).then(
      (value) => void outcomes.push(`${what} answered ${value}`),
      (error: Error) => void outcomes.push(error.message),
    );
  });
  // The newest, a middle one and the oldest answer; the second and the fourth are left waiting.
  (answers[4] as (value: string) => void)('5');
  (answers[2] as (value: string) => void)('3');
  (answers[0] as (value: string) => void)('1');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(deadlines.size, 2);
  await Promise.all(publishes);
  t.same(outcomes, [
    'fifth answered 5',
    'third answered 3',
    'first answered 1',
    'second: no answer from the broker within 60 ms',
    'fourth: no answer from the broker within 60 ms',
  ]);
  t.equal(deadlines.size, 0);
  // An answer after the deadline changes nothing.
  (answers[1] as (value: string) => void)('late');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(deadlines.size, 0);
});

t.test('a publish a turn leaves nothing for the old generation', async (t) => {
  // A Set of the waiting publishes, added to and deleted from on every publish, left ~70 bytes a publish there.
  const module = new URL('../../gateway/dapr/pubsub/publish-deadlines.js', import.meta.url).href;
  const { baseline, acting } = await oldGenerationGrowthPerTurn(module, 'return new subject.PublishDeadlines(5000, 250);', `return context.within(Promise.resolve(), 'publishing');`);
  t.ok(acting - baseline < 40, `the old generation grew ${acting.toFixed(1)} bytes a turn with a publish each turn, ${baseline.toFixed(1)} without (at most 40 more)`);
});
