import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createMemoryStore, createRateLimiter } from '../../../src';
import { ALGORITHMS, capacityOf, timeOf, withNumbers } from '../../../src/limit/algorithms';
import { checkPolicySet } from '../../../src/limit/policy-set';
import type { PolicyOptions, TierNumbers } from '../../../src/limit/types';
import { runs } from '../../support/canaries';

/** Numbers as a document may hold them: around every bound a field has, and past them. */
const someNumber = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 1, max: 1000 }) },
  fc.integer({ min: -2, max: 3 }),
  fc.constantFrom(0.5, 1e-9, 59.5, 86_400, 31 * 86_400, 31 * 86_400 + 1, 366 * 86_400, 100_000, 100_001, 1e6, 1e6 + 1, 1e9, 1e9 + 1),
  fc.double({ min: -1, max: 2e9, noNaN: true }),
);
const someValue = fc.oneof(
  { weight: 6, arbitrary: someNumber },
  fc.constantFrom<unknown>(undefined, undefined, 'day', 'month', 'week', '5', null),
);

/** A valid policy of each algorithm, as a policies document writes it. */
const EXAMPLES: { readonly [A in PolicyOptions['algorithm']]: Extract<PolicyOptions, { algorithm: A }> } = {
  token_bucket: { algorithm: 'token_bucket', rps: 10, burst: 20 },
  sliding_window: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60 },
  sliding_window_counter: { algorithm: 'sliding_window_counter', limit: 1000, windowSeconds: 60 },
  quota: { algorithm: 'quota', limit: 1000, period: 'day' },
  concurrency: { algorithm: 'concurrency', limit: 4 },
};
const context = (name: string) => ({ name, label: `policy "${name}"`, tier: undefined, surface: undefined, canRelease: true });
const ALL_NUMBER_FIELDS: readonly (keyof TierNumbers)[] = ['rps', 'burst', 'limit', 'windowSeconds'];

describe('limit/algorithms: one row per algorithm', () => {
  for (const [name, definition] of Object.entries(ALGORITHMS) as [
    PolicyOptions['algorithm'],
    (typeof ALGORITHMS)[keyof typeof ALGORITHMS],
  ][]) {
    describe(name, () => {
      const example = EXAMPLES[name];
      const compiled = (definition.compile as (p: PolicyOptions, c: ReturnType<typeof context>) => ReturnType<typeof definition.compile>)(
        example,
        context('p'),
      );

      it('compiles its policy into a check of its own algorithm, whose capacity is the bucket', () => {
        const c = compiled.check('rl:p:{1}', 1);
        assert.equal(c.algorithm, name);
        assert.equal(capacityOf(c), compiled.capacity);
        assert.ok(timeOf(c) >= 0 && compiled.windowSeconds > 0);
      });

      it('withNumbers replaces exactly its time and capacity (what an override stores)', () => {
        const c = compiled.check('rl:p:{1}', 2);
        const other = withNumbers(c, 123_456, 7);
        assert.deepEqual([timeOf(other), capacityOf(other), other.key, other.cost, other.algorithm], [123_456, 7, c.key, 2, name]);
      });

      it('the policies file takes, in a tier, exactly the numbers the row says a tier may set', () => {
        for (const field of ALL_NUMBER_FIELDS) {
          const value = field === 'rps' || field === 'windowSeconds' ? 30 : 40;
          const { errors } = checkPolicySet({ policies: { p: { ...example, tiers: { pro: { [field]: value } } } } }, {});
          assert.equal(
            errors.length === 0,
            definition.tierFields.includes(field),
            `${name} tier field ${field}: ${errors.map((e) => e.message).join('; ')}`,
          );
        }
      });
    });
  }

  it('a policy the policies document accepts, a limiter accepts: validation sees every rule compilation has (fast-check)', () => {
    const names = Object.keys(ALGORITHMS) as PolicyOptions['algorithm'][];
    const fields = [...new Set(names.flatMap((n) => Object.keys(ALGORITHMS[n].documentFields)))];
    const numbers = fc.record(Object.fromEntries(fields.map((f) => [f, someValue])));
    const policy = fc
      .record({
        algorithm: fc.constantFrom(...names),
        numbers,
        cost: fc.option(someNumber, { nil: undefined }),
        tier: fc.option(numbers, { nil: undefined }),
      })
      .map(({ algorithm, numbers, cost, tier }) => {
        const only = (o: Record<string, unknown>) =>
          Object.fromEntries(
            Object.entries(o).filter(([k, v]) => v !== undefined && Object.hasOwn(ALGORITHMS[algorithm].documentFields, k)),
          );
        return {
          algorithm,
          ...only(numbers),
          ...(cost === undefined ? {} : { cost }),
          ...(tier === undefined ? {} : { tiers: { pro: only(tier) } }),
        };
      });
    let accepted = 0;
    fc.assert(
      fc.property(policy, (p) => {
        const { set } = checkPolicySet({ policies: { p } }, {});
        if (set === undefined) return;
        accepted++;
        const limiter = createRateLimiter({ store: createMemoryStore(), policies: set.policies });
        void limiter.close();
      }),
      runs(2000),
    );
    // The property is about accepted documents: enough of them must have been generated.
    assert.ok(accepted >= 100, `only ${accepted} of 2000 generated policies were valid`);
  });

  it('every algorithm a policy can name has a row, and every row an example here', () => {
    assert.deepEqual(Object.keys(ALGORITHMS).sort(), Object.keys(EXAMPLES).sort());
  });

  it("the counter's limit stops at 10,000,000 (its counts are packed into one integer), in a document and in code; the exact window's only in a document", () => {
    const counter = { algorithm: 'sliding_window_counter', limit: 10_000_001, windowSeconds: 60 } as const;
    assert.match(
      checkPolicySet({ policies: { p: counter } }, {})
        .errors.map((e) => e.message)
        .join('\n'),
      /policies\.p\.limit/,
    );
    assert.throws(() => createRateLimiter({ store: createMemoryStore(), policies: { p: counter } }), /limit.*at most 10000000/);
    const ok = createRateLimiter({ store: createMemoryStore(), policies: { p: { ...counter, limit: 10_000_000 } } });
    void ok.close();
    const exact = createRateLimiter({
      store: createMemoryStore(),
      policies: { p: { ...counter, algorithm: 'sliding_window', limit: 200_000 } },
    });
    void exact.close();
  });
});
