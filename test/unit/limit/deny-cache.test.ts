import assert from 'node:assert/strict';
import { createDenyCache } from '../../../src/limit/deny-cache';

describe('deny cache', () => {
  const denial = (untilUs: number) => ({ untilUs, atUs: 0, remaining: [0], resetUs: [untilUs], blocked: 0 });

  it('answers a denial until its retry time, then forgets it', () => {
    const cache = createDenyCache(10);
    cache.remember('a', denial(1_000));
    assert.deepEqual(cache.get('a', 999), denial(1_000));
    assert.equal(cache.get('a', 1_000), undefined, 'expired at its retry time');
    cache.remember('a', denial(5_000));
    assert.ok(cache.get('a', 10) !== undefined);
    cache.clear();
    assert.equal(cache.get('a', 10), undefined);
  });

  it('holds at most maxKeys, dropping the oldest; maxKeys 0 remembers nothing', () => {
    const cache = createDenyCache(2);
    cache.remember('a', denial(100));
    cache.remember('b', denial(100));
    cache.remember('c', denial(100));
    assert.equal(cache.get('a', 0), undefined, 'the oldest went first');
    assert.ok(cache.get('b', 0) !== undefined && cache.get('c', 0) !== undefined);
    const off = createDenyCache(0);
    off.remember('a', denial(100));
    assert.equal(off.enabled, false);
    assert.equal(off.get('a', 0), undefined);
  });
});
