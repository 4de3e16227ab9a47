// Property-based tests (fast-check): key derivation holds its promises for any input, not just
// the examples in keys.test.ts. A failure prints the seed and the smallest input that breaks it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { customIdentity, ipIdentity, safeIdentity } from '../../../src';
import { MAX_IDENTITY_LENGTH } from '../../../src/limit/keys';

/** What may appear inside the braces of `rl:<policy>:{<identity>}`. */
const KEY_SAFE = /^[A-Za-z0-9._:@/#-]+$/;
/** Short strings over the characters that matter in a key: braces, separators, controls. */
const keyish = fc.string({ maxLength: 80, unit: fc.constantFrom(...'ab1.:@/#-_{} *?[]\u0000\n\r\u00e9') });
const anyText = fc.oneof(
  keyish,
  fc.string({ maxLength: 200, unit: 'grapheme' }),
  fc.string({ maxLength: 200, unit: 'binary' }),
  fc.string({ minLength: 60, maxLength: 20_000 }),
);
describe('properties', () => {
  describe('key derivation', () => {
    it('safeIdentity: any string becomes a short, key-safe, stable identity', () => {
      fc.assert(
        fc.property(anyText, (s) => {
          const id = safeIdentity(s);
          assert.ok(id.length >= 1 && id.length <= MAX_IDENTITY_LENGTH, `${id.length} characters`);
          assert.match(id, KEY_SAFE);
          assert.equal(safeIdentity(s), id);
        }),
        { numRuns: 500 },
      );
    });

    it('safeIdentity: two different values never share an identity', () => {
      fc.assert(
        fc.property(anyText, anyText, (a, b) => {
          fc.pre(a !== b);
          assert.notEqual(safeIdentity(a), safeIdentity(b));
        }),
        { numRuns: 500 },
      );
    });

    it("customIdentity: never shaped like another kind's marker, never outside the safe set", () => {
      fc.assert(
        fc.property(
          fc.oneof(
            anyText,
            fc.string({ maxLength: 10 }).map((s) => `i:${s}`),
            fc.constantFrom('p:1', 'c:x', 'i:10.0.0.1'),
          ),
          (s) => {
            const id = customIdentity(s);
            assert.doesNotMatch(id, /^[a-z]:/);
            assert.match(id, KEY_SAFE);
            assert.ok(id.length <= MAX_IDENTITY_LENGTH);
          },
        ),
        { numRuns: 500 },
      );
    });

    it('ipIdentity: IPv4 as is, IPv4-mapped IPv6 folded to it', () => {
      fc.assert(
        fc.property(fc.ipV4(), (ip) => {
          assert.equal(ipIdentity(ip, 64), ip);
          assert.equal(ipIdentity(`::ffff:${ip}`, 64), ip);
          assert.equal(ipIdentity(`::FFFF:${ip}`, 56), ip);
        }),
      );
    });

    it('ipIdentity: IPv6 addresses in one /64 share an identity, other /64s do not', () => {
      const group = fc.integer({ min: 0, max: 0xffff });
      const groups = (n: number) => fc.array(group, { minLength: n, maxLength: n });
      fc.assert(
        fc.property(groups(4), groups(4), groups(4), (prefix, hostA, hostB) => {
          fc.pre(!(prefix.slice(0, 2).every((g) => g === 0) && prefix[2] === 0));
          const hex = (g: readonly number[]) => g.map((x) => x.toString(16)).join(':');
          const a = ipIdentity(`${hex(prefix)}:${hex(hostA)}`, 64);
          const b = ipIdentity(`${hex(prefix)}:${hex(hostB)}`, 64);
          assert.equal(a, b);
          assert.match(a, KEY_SAFE);
          const other = [...prefix];
          other[3] = ((other[3] as number) + 1) & 0xffff;
          assert.notEqual(ipIdentity(`${hex(other)}:${hex(hostA)}`, 64), a);
        }),
      );
    });

    it('ipIdentity: anything (a forwarded header can say anything) becomes a key-safe identity', () => {
      fc.assert(
        fc.property(fc.oneof(anyText, fc.ipV6(), fc.ipV4Extended()), fc.integer({ min: 1, max: 128 }), (s, subnet) => {
          const id = ipIdentity(s, subnet);
          assert.match(id, KEY_SAFE);
          assert.ok(id.length <= MAX_IDENTITY_LENGTH, `${id.length} characters for ${JSON.stringify(s.slice(0, 40))}`);
        }),
        { numRuns: 500 },
      );
    });
  });
});
