// An allow list matches an IPv4 client however its address is written (fast-check: a failure
// prints the seed and the smallest address that breaks it).
import assert from 'node:assert/strict';
import type { Request, Response } from 'express';
import fc from 'fast-check';
import { ipIdentity } from '../../../src';
import { allowList } from '../../../src/limit/allow-list';

const hex = (n: number) => n.toString(16);
/** Every way an IPv6 address can stand for the IPv4 client `o` (the forms keys fold to it). */
function notations(o: readonly number[]): string[] {
  const [a, b, c, d] = o as [number, number, number, number];
  const dotted = `${a}.${b}.${c}.${d}`;
  const hi = hex((a << 8) | b);
  const lo = hex((c << 8) | d);
  return [
    `::ffff:${dotted}`,
    `::ffff:${hi}:${lo}`,
    `::FFFF:${hi.toUpperCase()}:${lo.toUpperCase()}`,
    `0:0:0:0:0:ffff:${hi}:${lo}`,
    `0000:0000:0000:0000:0000:ffff:${hi.padStart(4, '0')}:${lo.padStart(4, '0')}`,
    `64:ff9b::${dotted}`,
    `64:ff9b::${hi}:${lo}`,
    `64:ff9b:0:0:0:0:${hi}:${lo}`,
  ];
}
const request = (ip: string) => ({ ip, socket: { remoteAddress: ip } }) as unknown as Request;
const octets = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));

describe('allow lists', () => {
  it('an IPv4 entry or range matches its clients written as IPv4-mapped (dotted or hex) or NAT64, as keys fold them', () => {
    fc.assert(
      fc.property(octets, fc.integer({ min: 8, max: 32 }), (o, bits) => {
        const dotted = o.join('.');
        const allowed = allowList([`${dotted}/${bits}`], undefined);
        assert.equal(allowed(request(dotted), {} as Response), true);
        for (const written of notations(o)) {
          assert.equal(ipIdentity(written, 64), dotted, `${written}: the key folds it`);
          assert.equal(allowed(request(written), {} as Response), true, `${written} in ${dotted}/${bits}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a client outside the range is not matched in any notation', () => {
    fc.assert(
      fc.property(octets, octets, (listed, other) => {
        fc.pre(listed[0] !== other[0]);
        const allowed = allowList([`${listed.join('.')}/8`], undefined);
        for (const written of [other.join('.'), ...notations(other)])
          assert.equal(allowed(request(written), {} as Response), false, written);
      }),
      { numRuns: 300 },
    );
  });

  it('an IPv6 entry matches as written; a 6to4 address is not its IPv4 host for an exemption', () => {
    const allowed = allowList(['::ffff:10.0.0.1', '2001:db8::/32', '192.0.2.7'], undefined);
    assert.equal(allowed(request('::ffff:a00:1'), {} as Response), true);
    assert.equal(allowed(request('10.0.0.1'), {} as Response), true, 'the IPv4 client the mapped entry stands for');
    assert.equal(allowed(request('2001:db8:1::5'), {} as Response), true);
    assert.equal(allowed(request('2002:c000:207::1'), {} as Response), false);
  });
});
