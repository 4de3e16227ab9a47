// Property-based tests (fast-check): header formatting holds its promises for any input. A
// failure prints the seed and the smallest input that breaks the property.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Response } from 'express';
import { retryAfterSeconds } from '../../../src';
import { headerWriter, policyHeaderValue, type HeaderPolicy } from '../../../src/limit/headers';

describe('properties', () => {
  describe('header formatting', () => {
    const policyName = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,63}$/);
    const policy: fc.Arbitrary<HeaderPolicy> = fc.record({
      name: policyName,
      quota: fc.integer({ min: 1, max: 1_000_000_000 }),
      windowSeconds: fc.integer({ min: 1, max: 10_000_000 }),
    });
    const decision = fc.record({
      remaining: fc.integer({ min: -1_000, max: 1_000_000_000 }),
      resetUs: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ min: 0, max: 1e13, noNaN: true })),
    });

    function written(
      form: 'draft-10' | 'draft-7' | 'draft-6',
      policies: HeaderPolicy[],
      decisions: { remaining: number; resetUs: number }[],
    ) {
      const headers: Record<string, string> = {};
      const res = { setHeader: (k: string, v: string) => (headers[k] = v) } as unknown as Response;
      headerWriter(form)?.(
        res,
        policyHeaderValue(form, policies),
        policies,
        decisions.map((d) => d.remaining),
        decisions.map((d) => d.resetUs),
      );
      return headers;
    }

    it('draft-10: a structured-field list, one member per policy, integers never negative', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(policy, decision), { minLength: 1, maxLength: 5 }), (pairs) => {
          const h = written(
            'draft-10',
            pairs.map((p) => p[0]),
            pairs.map((p) => p[1]),
          );
          const member = /^"([a-z][a-z0-9_.-]*)";r=(\d+);t=(\d+)$/;
          const members = (h['RateLimit'] as string).split(', ');
          assert.equal(members.length, pairs.length);
          members.forEach((m, i) => {
            const match = member.exec(m);
            assert.ok(match, m);
            const [p, d] = pairs[i] as [HeaderPolicy, { remaining: number; resetUs: number }];
            assert.equal(match[1], p.name);
            assert.equal(Number(match[2]), Math.max(0, d.remaining));
            assert.equal(Number(match[3]), Math.ceil(d.resetUs / 1e6));
          });
          for (const m of (h['RateLimit-Policy'] as string).split(', ')) assert.match(m, /^"[a-z][a-z0-9_.-]*";q=\d+;w=\d+$/);
        }),
      );
    });

    it('draft-7 and draft-6: plain non-negative integers of the tightest policy', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(policy, decision), { minLength: 1, maxLength: 5 }), (pairs) => {
          const policies = pairs.map((p) => p[0]);
          const decisions = pairs.map((p) => p[1]);
          const minRemaining = Math.max(0, Math.min(...decisions.map((d) => d.remaining)));
          const d7 = written('draft-7', policies, decisions);
          assert.match(d7['RateLimit'] as string, /^limit=\d+, remaining=\d+, reset=\d+$/);
          assert.equal(Number(/remaining=(\d+)/.exec(d7['RateLimit'] as string)?.[1]), minRemaining);
          const d6 = written('draft-6', policies, decisions);
          for (const k of ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']) assert.match(d6[k] as string, /^\d+$/);
          assert.equal(Number(d6['RateLimit-Remaining']), minRemaining);
        }),
      );
    });

    it('Retry-After: a whole number of seconds, never 0 for a positive wait, never shorter than the wait', () => {
      fc.assert(
        fc.property(fc.double({ noNaN: false }), (s) => {
          const r = retryAfterSeconds(s);
          assert.ok(Number.isInteger(r) && r >= 0);
          if (Number.isFinite(s) && s > 0) {
            assert.ok(r >= 1 && r >= s);
            assert.ok(r - s < 1 || r === 1);
          } else assert.equal(r, 0);
        }),
        { numRuns: 1000 },
      );
    });
  });
});
