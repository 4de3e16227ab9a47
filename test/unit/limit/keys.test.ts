import assert from 'node:assert/strict';
import fc from 'fast-check';
import { customIdentity, ipIdentity, safeIdentity } from '../../../src';

describe('rate limit keys', () => {
  describe('ipIdentity', () => {
    it('keeps IPv4 and folds IPv4-mapped IPv6 to IPv4', () => {
      assert.equal(ipIdentity('203.0.113.7', 64), '203.0.113.7');
      assert.equal(ipIdentity('::ffff:203.0.113.7', 64), '203.0.113.7');
      assert.equal(ipIdentity('::FFFF:cb00:7107', 64), '203.0.113.7');
    });

    it('groups IPv6 by its /64 (configurable)', () => {
      assert.equal(ipIdentity('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2/64');
      assert.equal(ipIdentity('2001:db8:1:2::ffff', 64), '2001:db8:1:2/64');
      assert.equal(ipIdentity('2001:0db8:0001:0002:aaaa::1', 64), '2001:db8:1:2/64');
      assert.equal(ipIdentity('2001:db8:1:2:3:4:5:6', 56), '2001:db8:1/56');
      assert.equal(ipIdentity('2001:db8:1:2ff:3::', 56), '2001:db8:1:200/56');
      assert.equal(ipIdentity('2001:db8::1', 128), '2001:db8:0:0:0:0:0:1/128');
      assert.equal(ipIdentity('::1', 64), '0/64');
      assert.equal(ipIdentity('fe80::1%eth0', 64), 'fe80/64');
    });

    it('gives every address of one /64 the same identity, and different /64s different ones', () => {
      const hex = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
      fc.assert(
        fc.property(fc.array(hex, { minLength: 8, maxLength: 8 }), fc.array(hex, { minLength: 4, maxLength: 4 }), (a, tail) => {
          const same = [...a.slice(0, 4), ...tail].join(':');
          assert.equal(ipIdentity(a.join(':'), 64), ipIdentity(same, 64));
        }),
      );
      assert.notEqual(ipIdentity('2001:db8:1:2::1', 64), ipIdentity('2001:db8:1:3::1', 64));
    });

    it('never returns anything unsafe for a key, whatever the input', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 300 }), (s) => {
          const id = ipIdentity(s, 64);
          assert.match(id, /^[A-Za-z0-9._:@/#-]{1,64}$/);
        }),
      );
      assert.equal(ipIdentity(undefined, 64), 'unknown');
    });
  });

  describe('customIdentity', () => {
    it('keeps a plain value bare, and hashes values shaped like a kind marker', () => {
      assert.equal(customIdentity('abcdefgh'), 'abcdefgh');
      assert.equal(customIdentity('tenant:42'), 'tenant:42');
      for (const v of ['i:10.0.0.1', 'p:alice', 'c:x', 'k:y']) {
        const id = customIdentity(v);
        assert.match(id, /^#[A-Za-z0-9_-]{22}$/, v);
        assert.notEqual(id, v);
      }
      assert.notEqual(customIdentity('i:10.0.0.1'), customIdentity('i:10.0.0.2'));
      assert.match(customIdentity('}{evil'), /^#/);
    });
  });

  describe('safeIdentity', () => {
    it('keeps short plain values and hashes the rest to a fixed length', () => {
      assert.equal(safeIdentity('user-42'), 'user-42');
      assert.equal(safeIdentity('a'.repeat(64)), 'a'.repeat(64));
      const long = safeIdentity('a'.repeat(10_000));
      assert.match(long, /^#[A-Za-z0-9_-]{22}$/);
      assert.match(safeIdentity('}{evil'), /^#/);
      assert.match(safeIdentity('new\nline'), /^#/);
      assert.match(safeIdentity('ünïcode'), /^#/);
      assert.notEqual(safeIdentity('x}'), safeIdentity('y}'));
    });

    it('cannot be steered outside its hash tag', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (s) => {
          const id = safeIdentity(s);
          assert.ok(!id.includes('{') && !id.includes('}') && id.length <= 64 && id.length > 0);
        }),
      );
    });
  });
});
