import assert from 'node:assert/strict';
import { defaultPolicies, parsePolicySet, PolicyError } from '../../../src';

// src/config/policies-file.ts (the file, RATE_LIMIT_POLICIES_FILE) and src/limit/policy-set.ts (the document).
describe('policies document (src/limit/policy-set.ts)', () => {
  describe('parsePolicySet', () => {
    it('throws PolicyError with the place in the document, and never reads a file', () => {
      const defaults = defaultPolicies(5, 10);
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ surfaces: [{ surface_id: 's', path: '/v1', policies: ['nope'] }] }, 'surfaces.0.policies'],
        [{ policies: { x: { algorithm: 'token_bucket', rps: -1, burst: 2 } } }, 'policies.x.rps'],
        [[], ''],
      ];
      for (const [doc, path] of cases) {
        assert.throws(
          () => parsePolicySet(doc, defaults),
          (err: unknown) => {
            assert.ok(err instanceof PolicyError && err instanceof TypeError);
            assert.equal(err.path, path);
            assert.ok(!err.message.includes('RATE_LIMIT_POLICIES_FILE'), 'the limiter knows no variable names');
            return true;
          },
        );
      }
      assert.deepEqual(parsePolicySet({}, defaults), { policies: defaults, surfaces: undefined });
    });
  });
});
