import assert from 'node:assert/strict';
import fc from 'fast-check';
import { capacityOf, timeOf } from '../../../../src/limit/algorithms';
import { overrideKey, penaltyKey } from '../../../../src/limit/key-format';
import {
  BLOCKED_REMAINING,
  encodeAdjust,
  encodeDecide,
  encodeSettle,
  KIND,
  OVERRIDABLE,
  parseDecide,
  parseSettle,
  WITH_PENALTY,
} from '../../../../src/limit/redis/wire';
import type { Check } from '../../../../src/limit/types';
import { runs } from '../../../support/canaries';

const check: fc.Arbitrary<Check> = fc
  .record({
    key: fc.constantFrom('rl:a:{1}', 'rl:b:{1}', 'rl:a:{2}', 'rl:c:{x}'),
    cost: fc.integer({ min: 1, max: 3 }),
    a: fc.constantFrom(1000, 60_000_000, 3_600_000_000),
    b: fc.integer({ min: 3, max: 5 }),
    algorithm: fc.constantFrom('token_bucket', 'sliding_window', 'quota', 'concurrency'),
    penalty: fc.option(
      fc.record({ denials: fc.constantFrom(2, 3), windowUs: fc.constant(1_000_000), blockUs: fc.constantFrom(5_000_000, 9_000_000) }),
      {
        nil: undefined,
      },
    ),
    overridable: fc.boolean(),
    lease: fc.string({ minLength: 1, maxLength: 6 }),
  })
  .map(({ key, cost, a, b, algorithm, penalty, overridable, lease }): Check => {
    const extra = { ...(penalty === undefined ? {} : { penalty }), ...(overridable ? { overridable: true } : {}) };
    switch (algorithm) {
      case 'token_bucket':
        return { key, cost, algorithm, intervalUs: a, burst: b, ...extra };
      case 'sliding_window':
        return { key, cost, algorithm, windowUs: a, limit: b, ...extra };
      case 'quota':
        return { key, cost, algorithm, periodUs: a, limit: b, ...extra };
      default:
        return { key, cost, algorithm: 'concurrency', leaseUs: a, limit: b, lease, ...extra };
    }
  });

/** What the decide script reads of one check, read back from a call the way its header says. */
interface Read {
  key: string;
  pkey?: string;
  okey?: string;
  kind: number;
  a: number;
  b: number;
  cost: number;
  penalty?: [number, number, number];
  lease?: string;
}

/** The decide script's reading of KEYS and ARGV (its header), in TypeScript, independent of encodeDecide. */
function readDecide(numKeys: number, args: readonly (string | number)[]): Read[][] {
  const keys = args.slice(0, numKeys) as string[];
  const argv = args.slice(numKeys);
  let p = 0;
  const D = Number(argv[p++]);
  const S = Number(argv[p++]);
  const shapes: { kind: number; a: number; b: number; cost: number; pen?: [number, number, number]; ov: boolean }[] = [];
  for (let j = 0; j < S; j++) {
    let kind = Number(argv[p]);
    const shape = { a: Number(argv[p + 1]), b: Number(argv[p + 2]), cost: Number(argv[p + 3]) };
    p += 4;
    const ov = kind >= OVERRIDABLE;
    if (ov) kind -= OVERRIDABLE;
    let pen: [number, number, number] | undefined;
    if (kind >= WITH_PENALTY) {
      kind -= WITH_PENALTY;
      pen = [Number(argv[p]), Number(argv[p + 1]), Number(argv[p + 2])];
      p += 3;
    }
    shapes.push({ kind, ...shape, ...(pen === undefined ? {} : { pen }), ov });
  }
  const L = Number(argv[p++]);
  const leases = argv.slice(p, p + L) as string[];
  p += L;
  let k = 0;
  let l = 0;
  const decisions: Read[][] = [];
  for (let d = 0; d < D; d++) {
    const x = Number(argv[p++]);
    const refs = x > 0 ? [x] : argv.slice(p, (p += -x)).map(Number);
    decisions.push(
      refs.map((ref) => {
        const s = shapes[ref - 1];
        assert.ok(s !== undefined, `shape ${ref} of ${S}`);
        const read: Read = { key: keys[k++] as string, kind: s.kind, a: s.a, b: s.b, cost: s.cost };
        if (s.pen !== undefined) {
          read.pkey = keys[k++] as string;
          read.penalty = s.pen;
        }
        if (s.ov) read.okey = keys[k++] as string;
        if (s.kind === KIND.concurrency) read.lease = leases[l++] as string;
        return read;
      }),
    );
  }
  assert.equal(p, argv.length, 'every ARGV read');
  assert.equal(k, keys.length, 'every key read');
  assert.equal(l, leases.length, 'every lease read');
  return decisions;
}

describe('limit/redis/wire: the scripts’ arguments and replies', () => {
  it('encodeDecide: the script reads back every check of every decision, with its keys, numbers, penalty and lease, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.array(check, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }), (decisions) => {
        const { numKeys, args } = encodeDecide(decisions.map((checks) => ({ checks })));
        const read = readDecide(numKeys, args);
        assert.equal(read.length, decisions.length);
        decisions.forEach((checks, d) =>
          checks.forEach((c, i) => {
            const r = read[d]?.[i] as Read;
            assert.equal(r.key, c.key);
            assert.equal(r.kind, KIND[c.algorithm]);
            assert.deepEqual([r.a, r.b, r.cost], [timeOf(c), capacityOf(c), c.cost]);
            assert.equal(r.pkey, c.penalty === undefined ? undefined : penaltyKey(c.key));
            assert.deepEqual(r.penalty, c.penalty === undefined ? undefined : [c.penalty.denials, c.penalty.windowUs, c.penalty.blockUs]);
            assert.equal(r.okey, c.overridable === true ? overrideKey(c.key) : undefined);
            assert.equal(r.lease, c.algorithm === 'concurrency' ? c.lease : undefined);
          }),
        );
      }),
      runs(300),
    );
  });

  it('encodeDecide sends each distinct shape once', () => {
    const c: Check = { key: 'rl:a:{1}', cost: 1, algorithm: 'token_bucket', intervalUs: 1000, burst: 5 };
    const { numKeys, args } = encodeDecide([{ checks: [c] }, { checks: [{ ...c, key: 'rl:a:{2}' }] }, { checks: [{ ...c, burst: 6 }] }]);
    assert.equal(numKeys, 3);
    // D, S, two shapes of 4, L = 0, then one shape index per decision
    assert.deepEqual(args.slice(numKeys), [3, 2, KIND.token_bucket, 1000, 5, 1, KIND.token_bucket, 1000, 6, 1, 0, 1, 1, 2]);
  });

  it('parseDecide: per decision its retry, remaining and reset; BLOCKED marks the check its penalty refused; a reply of another length throws', () => {
    const one = { checks: [{ key: 'k', cost: 1, algorithm: 'token_bucket', intervalUs: 1, burst: 1 } as Check] };
    const two = { checks: [one.checks[0] as Check, one.checks[0] as Check] };
    const reply = [123, 0, 4, 10, 5_000, 0, 7, BLOCKED_REMAINING, 9];
    const parsed = parseDecide(reply, [one, two]);
    assert.equal(parsed.atUs, 123);
    // An admission carries the clock it was admitted at (what a settle takes back).
    assert.deepEqual(parsed.decisions[0], { allowed: true, retryAfterUs: 0, remaining: [4], resetUs: [10], atUs: 123 });
    assert.deepEqual(parsed.decisions[1], { allowed: false, retryAfterUs: 5_000, remaining: [0, 0], resetUs: [7, 9], blocked: 2 });
    // A debt of one (after a settle's charge) is a remaining like any other, not a block.
    const debt = parseDecide([123, 5_000, -1, 10], [one]).decisions[0];
    assert.deepEqual([debt?.remaining, debt?.blocked], [[-1], undefined]);
    assert.throws(() => parseDecide(reply.slice(1), [one, two]), /unexpected reply/);
    assert.throws(() => parseDecide('OK', [one]), /unexpected reply/);
  });

  it('encodeAdjust: the key and its override key, then kind, time, capacity, delta and the admission time', () => {
    const w: Check = { key: 'rl:w:{1}', cost: 3, algorithm: 'sliding_window', windowUs: 60_000_000, limit: 5, overridable: true };
    assert.deepEqual(encodeAdjust(w, -3, 99), {
      numKeys: 2,
      args: ['rl:w:{1}', 'rl:w:{1}!o', KIND.sliding_window + OVERRIDABLE, 60_000_000, 5, -3, 99],
    });
    const t: Check = { key: 'rl:t:{1}', cost: 1, algorithm: 'token_bucket', intervalUs: 1000, burst: 10 };
    assert.deepEqual(encodeAdjust(t, 4, 7), { numKeys: 1, args: ['rl:t:{1}', KIND.token_bucket, 1000, 10, 4, 7] });
  });

  it('encodeSettle and parseSettle: keys with override keys, then at and 5 values per check; 3 numbers back per check', () => {
    const c: Check = { key: 'rl:c:{1}', cost: 2, algorithm: 'concurrency', leaseUs: 30, limit: 4, lease: 'L1', overridable: true };
    const q: Check = { key: 'rl:q:{1}', cost: 1, algorithm: 'quota', periodUs: 0, limit: 9 };
    const { numKeys, args } = encodeSettle([c, q], 77);
    assert.deepEqual(args.slice(0, numKeys), ['rl:c:{1}', overrideKey('rl:c:{1}'), 'rl:q:{1}']);
    assert.deepEqual(args.slice(numKeys), [77, KIND.concurrency + OVERRIDABLE, 30, 4, 2, 'L1', KIND.quota, 0, 9, 1, '']);
    assert.deepEqual(parseSettle([1, 2, 3, 4, 5, 6], 2), [
      { remaining: 1, resetUs: 2, retryUs: 3 },
      { remaining: 4, resetUs: 5, retryUs: 6 },
    ]);
    assert.throws(() => parseSettle([1, 2], 2), /unexpected reply/);
  });
});
