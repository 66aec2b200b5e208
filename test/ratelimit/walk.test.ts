import t from 'tap';
import type { FastifyRequest } from 'fastify';
import type { CompiledLimit, CompiledPolicy, CompiledRule } from '../../plugins/ratelimit/compile.js';
import { enforceRateLimits } from '../../plugins/ratelimit/enforce.js';
import { PolicyDecisions } from '../../plugins/ratelimit/stats.js';
import { BackendUnavailableError, LocalStore } from '../../plugins/ratelimit/store.js';
import type { ConsumeOutcome, RateLimitStore } from '../../plugins/ratelimit/store.js';

const REQUEST = {} as FastifyRequest;
const ADMITTED: ConsumeOutcome = { allowed: true, remaining: 1, resetMs: 500 };
const REFUSED: ConsumeOutcome = { allowed: false, remaining: 0, resetMs: 700 };

/** A store that notes each consume in `calls` and answers `outcome`, at once or through a promise. */
function store(name: string, calls: string[], outcome: ConsumeOutcome | Error, later: boolean): RateLimitStore {
  return {
    consume(key) {
      calls.push(`${name}:${key}`);
      if (!later) return outcome as ConsumeOutcome;
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
  };
}

function limit(limitStore: RateLimitStore): CompiledLimit {
  return { requests: 1, windowSeconds: 1, cost: 1, store: limitStore, headerName: '"x"', policyItem: '"x";q=1;w=1' };
}

function policy(id: string, rules: CompiledRule[]): CompiledPolicy {
  const reply = { status: 429, body: '', flag: 'RL', details: 'rate_limited' } as unknown as CompiledPolicy['limitedReply'];
  return { id, rules, headersOnAllowed: true, decisions: new PolicyDecisions(id), limitedReply: reply, unavailableReply: reply };
}

function rule(key: string | null, limits: CompiledLimit[], matches = true): CompiledRule {
  return { matches: () => matches, keyOf: () => key, limits };
}

t.test('local stores are walked straight through; a remote answer resumes the walk where it stood', async (t) => {
  const calls: string[] = [];
  const policies = [
    policy('ns/a', [
      rule('k1', [limit(store('local1', calls, ADMITTED, false)), limit(store('redis', calls, ADMITTED, true)), limit(store('local2', calls, ADMITTED, false))]),
      rule('skipped', [limit(store('never', calls, REFUSED, false))], false),
      rule(null, [limit(store('no-key', calls, REFUSED, false))]),
    ]),
    policy('ns/b', [rule('k2', [limit(store('local3', calls, ADMITTED, false))])]),
  ];
  const localOnly = enforceRateLimits(REQUEST, { policies: [policies[1] as CompiledPolicy] });
  t.notOk(localOnly instanceof Promise, 'only local stores: the verdict comes at once');
  t.same(localOnly, { kind: 'allowed', reported: [{ limit: policies[1]?.rules[0]?.limits[0], remaining: 1, resetMs: 500 }] });
  calls.length = 0;
  const pending = enforceRateLimits(REQUEST, { policies });
  t.ok(pending instanceof Promise);
  const verdict = await pending;
  t.same(calls, ['local1:k1', 'redis:k1', 'local2:k1', 'local3:k2'], 'every limit once, in order, across the remote answer');
  t.equal(verdict.kind, 'allowed');
  t.equal(verdict.kind === 'allowed' ? verdict.reported.length : -1, 4);
});

t.test('the first refusal ends the walk, whether it comes at once or later', async (t) => {
  for (const later of [false, true]) {
    const calls: string[] = [];
    const refusing = limit(store('refuses', calls, REFUSED, later));
    const verdict = await enforceRateLimits(REQUEST, { policies: [policy('ns/a', [rule('k', [refusing, limit(store('after', calls, ADMITTED, false))])])] });
    t.same(calls, ['refuses:k'], `later: ${later}`);
    t.match(verdict, { kind: 'limited', limit: refusing, resetMs: 700 });
  }
});

t.test('a backend that cannot decide gives the policy\'s unavailable verdict; other errors are thrown', async (t) => {
  const calls: string[] = [];
  const down = policy('ns/a', [rule('k', [limit(store('redis', calls, new BackendUnavailableError(new Error('down')), true))])]);
  t.match(await enforceRateLimits(REQUEST, { policies: [down] }), { kind: 'unavailable', policy: down });
  const broken = policy('ns/b', [rule('k', [limit(store('redis', calls, new Error('bug'), true))])]);
  await t.rejects(async () => enforceRateLimits(REQUEST, { policies: [broken] }), /bug/);
});

t.test('local store: a fixed window per key from its first request, refusals counted, ended windows swept', async (t) => {
  let now = 1_000_000;
  const local = new LocalStore({ requests: 2, windowSeconds: 1 }, () => now);
  t.match(local.consume('a', 1), { allowed: true, remaining: 1 });
  t.match(local.consume('a', 1), { allowed: true, remaining: 0 });
  const refused = local.consume('a', 1);
  t.match(refused, { allowed: false, remaining: 0 });
  t.equal(refused.resetMs, 1000, 'resets when the window that began with the first request ends');
  t.match(local.consume('b', 2), { allowed: true, remaining: 0 }, 'another key has its own window');
  for (let index = 0; index < 1000; index++) local.consume(`flood-${index}`, 1);
  t.equal(local.size, 1002);
  now += 999;
  t.match(local.consume('a', 1), { allowed: false, resetMs: 1 }, 'still the same window 1 ms before its end');
  now += 1;
  t.match(local.consume('a', 1), { allowed: true, remaining: 1 }, 'a new window after the last one ended');
  t.equal(local.size, 1, 'the ended windows of every other key are gone');
});
