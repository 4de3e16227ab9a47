import assert from 'node:assert/strict';
import { ALGORITHMS, capacityOf, timeOf, withNumbers } from '../../../src/limit/algorithms';
import { checkPolicySet } from '../../../src/limit/policy-set';
import type { PolicyOptions, TierNumbers } from '../../../src/limit/types';

/** A valid policy of each algorithm, as a policies document writes it. */
const EXAMPLES: { readonly [A in PolicyOptions['algorithm']]: Extract<PolicyOptions, { algorithm: A }> } = {
  token_bucket: { algorithm: 'token_bucket', rps: 10, burst: 20 },
  sliding_window: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60 },
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

  it('every algorithm a policy can name has a row, and every row an example here', () => {
    assert.deepEqual(Object.keys(ALGORITHMS).sort(), Object.keys(EXAMPLES).sort());
  });
});
