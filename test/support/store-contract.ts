import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import type { Check, RateLimitStore } from '../../src';
import { concurrency, quota, slidingWindow, tokenBucket } from './checks';
import { counterContract } from './counter-contract';
import { settleContract } from './settle-contract';

/** A store for one run of the contract, and how to dispose of it. */
export interface ContractStore {
  readonly store: RateLimitStore;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MS = 1000;

export { concurrency, quota, slidingWindow, tokenBucket } from './checks';

/** When the UTC day and month holding `ms` end (JavaScript's own calendar, to check the stores'). */
const nextUtcDay = (ms: number) => Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth(), new Date(ms).getUTCDate() + 1);
const nextUtcMonth = (ms: number) => Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth() + 1, 1);

/**
 * The behaviour every store must have, run against the memory store and Redis (and, for the
 * HA topologies, Sentinel and Cluster): the same numbers, the same all-or-nothing rule.
 */
export function storeContract(kind: string, open: () => Promise<ContractStore>): void {
  describe(`store contract: ${kind}`, function () {
    this.timeout(30_000);
    let s: ContractStore;
    let prefix: string;
    before(async () => {
      s = await open();
    });
    after(async () => {
      await s?.close();
    });
    beforeEach(() => {
      prefix = `rltest:${randomBytes(4).toString('hex')}`;
    });
    const key = (name: string) => `${prefix}:${name}:{id}`;

    it('token bucket: admits the burst, counts remaining down, then denies with a retry time', async () => {
      const check = tokenBucket(key('tb'), 5, 3);
      const remaining: number[] = [];
      for (let i = 0; i < 3; i++) {
        const d = await s.store.decide([check]);
        assert.equal(d.allowed, true, `request ${i + 1}`);
        assert.equal(d.retryAfterUs, 0);
        remaining.push(d.remaining[0] as number);
      }
      assert.deepEqual(remaining, [2, 1, 0]);
      const denied = await s.store.decide([check]);
      assert.equal(denied.allowed, false);
      assert.equal(denied.remaining[0], 0);
      // One token every 200 ms: the next one is at most 200 ms away.
      assert.ok(denied.retryAfterUs > 0 && denied.retryAfterUs <= 200 * MS, String(denied.retryAfterUs));
      // Time to full: three tokens' worth, less what has passed.
      assert.ok((denied.resetUs[0] as number) > 400 * MS && (denied.resetUs[0] as number) <= 600 * MS, String(denied.resetUs[0]));
    });

    it('token bucket: refills exactly at the boundary, and a denial consumes nothing', async () => {
      const check = tokenBucket(key('refill'), 4, 1); // one token per 250 ms
      assert.equal((await s.store.decide([check])).allowed, true);
      const first = await s.store.decide([check]);
      assert.equal(first.allowed, false);
      // Well before the boundary: still denied, and the retry time only shrinks (denials are free).
      await sleep(Math.max(0, first.retryAfterUs / MS - 120));
      const early = await s.store.decide([check]);
      assert.equal(early.allowed, false);
      assert.ok(early.retryAfterUs < first.retryAfterUs, 'the wait shrinks: denials did not consume');
      await sleep(early.retryAfterUs / MS + 30);
      const after = await s.store.decide([check]);
      assert.equal(after.allowed, true, 'admitted once the boundary passed');
      assert.equal((await s.store.decide([check])).allowed, false, 'and only one token came back');
    });

    it('sliding window: exact at the window edge', async () => {
      const check = slidingWindow(key('sw'), 3, 1000);
      const t0 = Date.now();
      assert.equal((await s.store.decide([check])).allowed, true);
      await sleep(300);
      assert.equal((await s.store.decide([check])).allowed, true);
      await sleep(300);
      const third = await s.store.decide([check]);
      assert.equal(third.allowed, true);
      assert.equal(third.remaining[0], 0);
      const denied = await s.store.decide([check]);
      assert.equal(denied.allowed, false);
      // The first admission leaves the window 1000 ms after it happened.
      const expected = 1000 - (Date.now() - t0);
      assert.ok(Math.abs(denied.retryAfterUs / MS - expected) < 60, `${denied.retryAfterUs / MS} vs ${expected}`);
      await sleep(Math.max(0, 1000 - (Date.now() - t0) - 80));
      assert.equal((await s.store.decide([check])).allowed, false, 'just before the edge');
      await sleep(1000 - (Date.now() - t0) + 40);
      const edge = await s.store.decide([check]);
      assert.equal(edge.allowed, true, 'just after the edge: exactly one slot freed');
      const next = await s.store.decide([check]);
      assert.equal(next.allowed, false, 'the second admission is still inside the window');
      assert.ok(next.retryAfterUs / MS <= 300, String(next.retryAfterUs));
    });

    it('several policies: all-or-nothing, a denial by one consumes nothing from the others', async () => {
      const bucket = tokenBucket(key('a'), 0.01, 5);
      const window = slidingWindow(key('b'), 2, 60_000);
      for (let i = 0; i < 2; i++) assert.equal((await s.store.decide([bucket, window])).allowed, true);
      const denied = await s.store.decide([bucket, window]);
      assert.equal(denied.allowed, false);
      assert.deepEqual(denied.remaining, [3, 0]);
      assert.ok(denied.retryAfterUs > 59_000 * MS, 'the window, not the bucket, sets the wait');
      const bucketAlone = await s.store.decide([bucket]);
      assert.equal(bucketAlone.allowed, true);
      assert.equal(bucketAlone.remaining[0], 2, 'the denied request took no token');
      const windowAlone = await s.store.decide([window]);
      assert.equal(windowAlone.allowed, false);
    });

    // Two identities whose keys live in different Redis Cluster hash slots, lower slot first:
    // on Cluster a decision over both is made slot by slot. Both orders are tried, so the
    // tight policy is met first (nothing to give back) and last (the first step is given back).
    const identities = (): [string, string] => {
      const a = `u${randomBytes(3).toString('hex')}`;
      for (let i = 0; ; i++) {
        const b = `v${i}`;
        if (calculateSlot(a) < calculateSlot(b)) return [a, b];
        if (calculateSlot(a) > calculateSlot(b)) return [b, a];
      }
    };
    const on = (name: string, identity: string) => `${prefix}:${name}:{${identity}}`;

    for (const tightFirst of [true, false]) {
      const order = tightFirst ? 'the denying key in the lower slot' : 'the denying key in the higher slot';
      it(`several identities (keys in different slots, ${order}): all-or-nothing, a denial consumes nothing`, async () => {
        const [lo, hi] = identities();
        const bucket = tokenBucket(on('a', tightFirst ? hi : lo), 0.01, 5);
        const window = slidingWindow(on('b', tightFirst ? lo : hi), 2, 60_000);
        for (let i = 0; i < 2; i++) assert.equal((await s.store.decide([bucket, window])).allowed, true);
        const denied = await s.store.decide([bucket, window]);
        assert.equal(denied.allowed, false);
        assert.deepEqual(denied.remaining, [3, 0], 'remaining as before the denied request, for both');
        assert.ok(denied.retryAfterUs > 59_000 * MS, 'the window, not the bucket, sets the wait');
        const bucketAlone = await s.store.decide([bucket]);
        assert.equal(bucketAlone.allowed, true);
        assert.equal(bucketAlone.remaining[0], 2, 'the denied request took no token');
        assert.equal((await s.store.decide([window])).allowed, false);
      });

      it(`racing decisions over two identities (${order}) admit exactly the tighter limit and leave the other charged only for them`, async () => {
        const [lo, hi] = identities();
        for (const make of [slidingWindow, (k: string, limit: number) => tokenBucket(k, 1 / 3600, limit)]) {
          const tight = make(on(`t${make === slidingWindow ? 'w' : 'b'}`, tightFirst ? lo : hi), 10, 3_600_000);
          const loose = make(on(`l${make === slidingWindow ? 'w' : 'b'}`, tightFirst ? hi : lo), 1000, 3_600_000);
          const results = await Promise.all(Array.from({ length: 100 }, () => s.store.decide([tight, loose])));
          assert.equal(results.filter((r) => r.allowed).length, 10, 'never past the tight limit, and nothing lost to the race');
          const after = await s.store.decide([loose]);
          assert.equal(after.remaining[0], 1000 - 10 - 1, 'the 90 denied requests gave back what they took from the loose one');
        }
      });
    }

    it('concurrent decisions over one, the other and both identities never admit past either limit', async () => {
      const [lo, hi] = identities();
      const a = slidingWindow(on('a', lo), 5, 3_600_000);
      const b = tokenBucket(on('b', hi), 1 / 3600, 5);
      const shapes: Check[][] = [[a, b], [a], [b], [b, a]];
      const batch = Array.from({ length: 80 }, (_, i) => shapes[i % shapes.length] as Check[]);
      const results = await Promise.all(batch.map((checks) => s.store.decide(checks)));
      const took = (c: Check) => results.filter((r, i) => r.allowed && (batch[i] as Check[]).includes(c)).length;
      assert.ok(took(a) <= 5 && took(b) <= 5, `a admitted ${took(a)}, b admitted ${took(b)}`);
      assert.ok(took(a) >= 1 && took(b) >= 1, 'the limits were used');
      // Every refusal gave back what it took: each bucket holds exactly what was admitted.
      for (const [c, name] of [
        [a, 'a'],
        [b, 'b'],
      ] as const) {
        const next = await s.store.decide([c]);
        assert.equal(next.allowed, took(c) < 5, name);
        assert.equal(next.remaining[0], took(c) < 5 ? 5 - took(c) - 1 : 0, name);
      }
    });

    it('admits exactly the burst under 400 concurrent decisions', async () => {
      const check = tokenBucket(key('race'), 0.001, 100);
      const results = await Promise.all(Array.from({ length: 400 }, () => s.store.decide([check])));
      assert.equal(results.filter((r) => r.allowed).length, 100);
      const remaining = results
        .filter((r) => r.allowed)
        .map((r) => r.remaining[0])
        .sort((x, y) => (x as number) - (y as number));
      assert.deepEqual(
        remaining,
        Array.from({ length: 100 }, (_, i) => i),
        'each admitted request saw a distinct remaining',
      );
    });

    it('cost: a request may take several tokens or slots', async () => {
      const bucket = tokenBucket(key('cost'), 0.01, 5, 3);
      assert.equal((await s.store.decide([bucket])).remaining[0], 2);
      assert.equal((await s.store.decide([bucket])).allowed, false);
      const window = slidingWindow(key('costw'), 5, 60_000, 2);
      assert.equal((await s.store.decide([window])).remaining[0], 3);
      assert.equal((await s.store.decide([window])).remaining[0], 1);
      assert.equal((await s.store.decide([window])).allowed, false);
    });

    it('cost: a denied request takes nothing (a cheaper one still fits after it), for windows and buckets', async () => {
      const bucket = (cost: number) => tokenBucket(key('costdeny'), 1 / 3600, 5, cost);
      assert.equal((await s.store.decide([bucket(3)])).remaining[0], 2);
      const denied = await s.store.decide([bucket(3)]);
      assert.equal(denied.allowed, false);
      assert.equal(denied.remaining[0], 2, 'the denial shows what is left, untouched');
      const after = await s.store.decide([bucket(2)]);
      assert.deepEqual([after.allowed, after.remaining[0]], [true, 0]);
      const window = (cost: number) => slidingWindow(key('costdenyw'), 5, 3_600_000, cost);
      assert.equal((await s.store.decide([window(4)])).remaining[0], 1);
      assert.equal((await s.store.decide([window(2)])).allowed, false);
      const last = await s.store.decide([window(1)]);
      assert.deepEqual([last.allowed, last.remaining[0]], [true, 0]);
    });

    it('decisions made in the same turn are decided in order, each all-or-nothing', async () => {
      // One hour per token and per window: nothing refills during the test.
      const a = (cost = 1) => tokenBucket(key('a'), 1 / 3600, 3, cost);
      const b = () => slidingWindow(key('b'), 2, 3_600_000);
      const c = () => tokenBucket(key('c'), 1 / 3600, 10);
      // Fired together: a store may coalesce them into one call, and must keep their order.
      const batch: Check[][] = [[a()], [b()], [a(), b()], [b()], [a(), b()], [c(), a()], [a()], [b(), c()], [a(2)], [c()]];
      const got = await Promise.all(batch.map((checks) => s.store.decide(checks)));
      const summary = got.map((d) => [d.allowed, d.retryAfterUs === 0, ...d.remaining]);
      assert.deepEqual(summary, [
        [true, true, 2], // a: 3 -> 2
        [true, true, 1], // b: 2 -> 1
        [true, true, 1, 0], // a -> 1, b -> 0
        [false, false, 0], // b full
        [false, false, 1, 0], // denied by b: a keeps its token
        [true, true, 9, 0], // c -> 9, a -> 0
        [false, false, 0], // a empty
        [false, false, 0, 9], // denied by b: c keeps its token
        [false, false, 0], // a: cost 2, empty
        [true, true, 8], // c -> 8
      ]);
    });

    it('quota: admits the limit in a period, denies until the period ends, then starts again from zero', async () => {
      const PERIOD = 2_000; // ms: periods are aligned to multiples of it since the epoch
      await sleep(PERIOD - (Date.now() % PERIOD) + 20); // just after a boundary
      const check = quota(key('q'), 3, PERIOD);
      const remaining: number[] = [];
      for (let i = 0; i < 3; i++) {
        const d = await s.store.decide([check]);
        assert.equal(d.allowed, true, `request ${i + 1}`);
        remaining.push(d.remaining[0] as number);
      }
      assert.deepEqual(remaining, [2, 1, 0]);
      const denied = await s.store.decide([check]);
      const endsIn = PERIOD - (Date.now() % PERIOD);
      assert.equal(denied.allowed, false);
      assert.equal(denied.remaining[0], 0);
      // The wait and the reset are the time to the period's end (the store's clock, ±50 ms).
      assert.ok(Math.abs(denied.retryAfterUs / MS - endsIn) < 50, `${denied.retryAfterUs / MS} ms vs ${endsIn} ms`);
      assert.equal(denied.resetUs[0], denied.retryAfterUs);
      // More denials take nothing: the next period starts from zero.
      for (let i = 0; i < 5; i++) assert.equal((await s.store.decide([check])).allowed, false);
      await sleep(denied.retryAfterUs / MS + 30);
      const next = await s.store.decide([check]);
      assert.deepEqual([next.allowed, next.remaining[0]], [true, 2]);
    });

    it('quota: UTC calendar day and month end where the calendar says, with cost', async () => {
      const day = quota(key('day'), 10_000, 86_400_000, 7);
      const month = quota(key('month'), 3, 'month');
      const t = Date.now();
      const [d, m] = [await s.store.decide([day]), await s.store.decide([month])];
      assert.deepEqual([d.allowed, d.remaining[0], m.allowed, m.remaining[0]], [true, 9_993, true, 2]);
      assert.ok(Math.abs((d.resetUs[0] as number) / MS - (nextUtcDay(t) - t)) < 1_000, `day: ${d.resetUs[0]}`);
      assert.ok(Math.abs((m.resetUs[0] as number) / MS - (nextUtcMonth(t) - t)) < 1_000, `month: ${m.resetUs[0]}`);
      // cost larger than what is left is refused and takes nothing
      const big = await s.store.decide([quota(key('month'), 3, 'month', 3)]);
      assert.deepEqual([big.allowed, big.remaining[0]], [false, 2]);
      assert.equal((await s.store.decide([quota(key('month'), 3, 'month', 2)])).remaining[0], 0);
    });

    it('quota beside a burst on one key: "2 per hour-bucket with bursts AND 3 per period" all-or-nothing in one decision', async () => {
      const bucket = tokenBucket(key('qb'), 1 / 3600, 2);
      const daily = quota(key('qd'), 3, 86_400_000);
      for (let i = 0; i < 2; i++) assert.equal((await s.store.decide([bucket, daily])).allowed, true);
      const byBucket = await s.store.decide([bucket, daily]);
      assert.equal(byBucket.allowed, false);
      assert.deepEqual(byBucket.remaining, [0, 1], 'the bucket denied; the quota kept its unit');
      assert.equal((await s.store.decide([daily])).remaining[0], 0, 'the quota had 1 left: the denial took nothing');
      const byQuota = await s.store.decide([tokenBucket(key('qb2'), 1 / 3600, 2), daily]);
      assert.equal(byQuota.allowed, false);
      assert.equal(
        (await s.store.decide([tokenBucket(key('qb2'), 1 / 3600, 2)])).remaining[0],
        1,
        'the quota denied: the bucket kept its token',
      );
    });

    it('two quotas of one identity, the later one refusing: the earlier takes nothing; a fresh quota refused for its cost stays empty', async () => {
      const hourly = quota(key('qh'), 5, 3_600_000);
      const daily = quota(key('qd2'), 1, 86_400_000);
      const first = await s.store.decide([hourly, daily]);
      assert.deepEqual([first.allowed, ...first.remaining], [true, 4, 0]);
      const second = await s.store.decide([hourly, daily]);
      assert.deepEqual([second.allowed, ...second.remaining], [false, 4, 0], 'the daily quota refused; the hourly kept its unit');
      assert.equal((await s.store.decide([hourly])).remaining[0], 3, 'the refused request took nothing from the hourly quota');
      // A cost above the limit on a quota never used: refused, and the quota still whole after it.
      const fresh = quota(key('qf'), 2, 3_600_000, 3);
      const refused = await s.store.decide([fresh]);
      assert.deepEqual([refused.allowed, refused.remaining[0]], [false, 2]);
      const whole = await s.store.decide([quota(key('qf'), 2, 3_600_000, 2)]);
      assert.deepEqual([whole.allowed, whole.remaining[0]], [true, 0]);
    });

    it('a refusal waits for every check that refuses: an empty bucket and a used-up quota give the quota’s wait', async () => {
      const bucket = tokenBucket(key('rb'), 0.1, 1);
      const daily = quota(key('rq'), 1, 86_400_000);
      assert.equal((await s.store.decide([bucket, daily])).allowed, true);
      const refused = await s.store.decide([bucket, daily]);
      assert.equal(refused.allowed, false);
      assert.deepEqual(refused.remaining, [0, 0]);
      const quotaWait = refused.resetUs[1] as number;
      assert.ok(
        refused.retryAfterUs >= Math.max(9_000_000, quotaWait - 1_000),
        `retry ${refused.retryAfterUs} µs, the quota's period ends in ${quotaWait} µs`,
      );
    });

    it('quota across identities (keys in different slots): a later denial gives the quota back', async () => {
      const [lo, hi] = identities();
      const q = quota(on('q', lo), 5, 86_400_000);
      const w = slidingWindow(on('w', hi), 1, 3_600_000);
      assert.equal((await s.store.decide([q, w])).allowed, true);
      const denied = await s.store.decide([q, w]);
      assert.equal(denied.allowed, false);
      assert.deepEqual(denied.remaining, [4, 0]);
      assert.equal((await s.store.decide([q])).remaining[0], 3, 'the denied request took nothing from the quota');
    });

    it('concurrency: at most limit leases at once; a release frees a slot at once; a denial takes none', async () => {
      const store = s.store;
      const release = store.release?.bind(store);
      assert.ok(release !== undefined, 'the store releases leases');
      const held = [concurrency(key('c'), 2, 60_000), concurrency(key('c'), 2, 60_000)];
      const first = await store.decide([held[0] as Check]);
      assert.deepEqual([first.allowed, first.remaining[0]], [true, 1]);
      assert.equal((await store.decide([held[1] as Check])).remaining[0], 0);
      const denied = await store.decide([concurrency(key('c'), 2, 60_000)]);
      assert.equal(denied.allowed, false);
      assert.equal(denied.remaining[0], 0);
      assert.ok(denied.retryAfterUs > 0 && denied.retryAfterUs <= 1_000 * MS, `wait ${denied.retryAfterUs}: at most 1 s`);
      for (let i = 0; i < 3; i++) assert.equal((await store.decide([concurrency(key('c'), 2, 60_000)])).allowed, false);
      await release([held[0] as Check]);
      const next = concurrency(key('c'), 2, 60_000);
      assert.deepEqual([(await store.decide([next])).allowed], [true], 'the released slot is free at once');
      assert.equal((await store.decide([concurrency(key('c'), 2, 60_000)])).allowed, false, 'and only that one');
      await release([held[1] as Check, next, tokenBucket(key('other'), 1, 1)]);
      const cost2 = concurrency(key('c'), 2, 60_000, 2);
      assert.deepEqual((await store.decide([cost2])).remaining, [0], 'both slots free: a cost of 2 fits');
      await release([cost2]);
      assert.equal((await store.decide([concurrency(key('c'), 2, 60_000)])).remaining[0], 1, 'a release gives back every slot of its cost');
    });

    it('concurrency: a lease never released ends on its own after the lease time (a dead process frees its slots)', async () => {
      assert.equal((await s.store.decide([concurrency(key('lease'), 1, 400)])).allowed, true);
      const denied = await s.store.decide([concurrency(key('lease'), 1, 400)]);
      assert.equal(denied.allowed, false);
      assert.ok(denied.retryAfterUs <= 400 * MS, `the wait is until the lease ends: ${denied.retryAfterUs}`);
      await sleep(denied.retryAfterUs / MS + 30);
      assert.equal((await s.store.decide([concurrency(key('lease'), 1, 400)])).allowed, true);
    });

    it('concurrency: an ended lease beside a live one is dropped when the set is full, and its slot taken again', async () => {
      assert.equal((await s.store.decide([concurrency(key('mixed'), 2, 300)])).allowed, true, 'a short lease, never released');
      assert.equal((await s.store.decide([concurrency(key('mixed'), 2, 60_000)])).allowed, true, 'a long one, held');
      assert.equal((await s.store.decide([concurrency(key('mixed'), 2, 60_000)])).allowed, false, 'full while both run');
      await sleep(350);
      const after = await s.store.decide([concurrency(key('mixed'), 2, 60_000)]);
      assert.deepEqual([after.allowed, after.remaining[0]], [true, 0], 'the ended lease gave its slot back');
      assert.equal((await s.store.decide([concurrency(key('mixed'), 2, 60_000)])).allowed, false, 'and only that one');
    });

    it('concurrency: 50 racing requests on a limit of 10 take exactly 10 leases', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => s.store.decide([concurrency(key('race'), 10, 60_000)])));
      assert.equal(results.filter((r) => r.allowed).length, 10);
    });

    it('concurrency beside a bucket on one key, and across identities: a denial takes no lease', async () => {
      const bucket = tokenBucket(key('cb'), 1 / 3600, 1);
      assert.equal((await s.store.decide([concurrency(key('cc'), 2, 60_000), bucket])).allowed, true);
      assert.equal((await s.store.decide([concurrency(key('cc'), 2, 60_000), bucket])).allowed, false);
      assert.equal((await s.store.decide([concurrency(key('cc'), 2, 60_000)])).remaining[0], 0, 'one lease from each admitted request');
      const [lo, hi] = identities();
      const window = slidingWindow(on('w', hi), 1, 3_600_000);
      assert.equal((await s.store.decide([concurrency(on('c', lo), 3, 60_000), window])).allowed, true);
      const denied = await s.store.decide([concurrency(on('c', lo), 3, 60_000), window]);
      assert.deepEqual([denied.allowed, denied.remaining[0]], [false, 2]);
      assert.equal((await s.store.decide([concurrency(on('c', lo), 3, 60_000)])).remaining[0], 1, 'the denied request holds no lease');
    });

    it('tiers: other numbers on the same key carry its state over (a bucket, a window, a quota)', async () => {
      const free = tokenBucket(key('tier'), 1 / 3600, 2);
      const pro = tokenBucket(key('tier'), 1 / 3600, 5);
      for (let i = 0; i < 2; i++) assert.equal((await s.store.decide([free])).allowed, true);
      assert.equal((await s.store.decide([free])).allowed, false);
      assert.deepEqual((await s.store.decide([pro])).remaining, [2], 'two taken as free: three left as pro, one now taken');
      const w = (limit: number) => slidingWindow(key('tierw'), limit, 3_600_000);
      assert.equal((await s.store.decide([w(1)])).allowed, true);
      assert.equal((await s.store.decide([w(1)])).allowed, false);
      assert.deepEqual((await s.store.decide([w(3)])).remaining, [1]);
      const q = (limit: number) => quota(key('tierq'), limit, 86_400_000);
      assert.equal((await s.store.decide([q(1)])).allowed, true);
      assert.equal((await s.store.decide([q(1)])).allowed, false);
      assert.deepEqual((await s.store.decide([q(10)])).remaining, [8]);
    });

    it('penalty: 3 refusals within the window block the identity for the block time, whatever the bucket holds', async () => {
      const penalty = { denials: 3, windowUs: 10_000 * MS, blockUs: 700 * MS };
      const check: Check = { ...tokenBucket(key('pen'), 10, 1), penalty }; // one token, back every 100 ms
      assert.equal((await s.store.decide([check])).allowed, true);
      for (let strike = 1; strike <= 2; strike++) {
        const d = await s.store.decide([check]);
        assert.deepEqual([d.allowed, d.blocked ?? 0], [false, 0], `refusal ${strike}: a strike, no block yet`);
        assert.ok(d.retryAfterUs <= 100 * MS, `the bucket's own wait (${d.retryAfterUs})`);
      }
      const third = await s.store.decide([check]);
      assert.deepEqual([third.allowed, third.blocked, third.remaining[0]], [false, 1, 0], 'the third refusal blocks');
      assert.equal(third.retryAfterUs, 700 * MS);
      await sleep(200); // the bucket has its token back; the block holds
      const during = await s.store.decide([check]);
      assert.deepEqual([during.allowed, during.blocked], [false, 1]);
      assert.ok(during.retryAfterUs <= 520 * MS && during.retryAfterUs >= 400 * MS, `the block's rest (${during.retryAfterUs})`);
      await sleep(during.retryAfterUs / MS + 30);
      assert.equal((await s.store.decide([check])).allowed, true, 'admitted once the block ended');
    });

    it("penalty: only the policy's own refusals are strikes, and a block refuses with the other checks untouched", async () => {
      const penalty = { denials: 2, windowUs: 10_000 * MS, blockUs: 60_000 * MS };
      const loose: Check = { ...tokenBucket(key('loose'), 1 / 3600, 100), penalty };
      const tight = tokenBucket(key('tight'), 1 / 3600, 1);
      assert.equal((await s.store.decide([loose, tight])).allowed, true);
      for (let i = 0; i < 4; i++) {
        const d = await s.store.decide([loose, tight]);
        assert.deepEqual([d.allowed, d.blocked ?? 0], [false, 0], 'refused by the tight bucket: no strike for the loose one');
      }
      const lone: Check = { ...tokenBucket(key('lone'), 1 / 3600, 1), penalty };
      assert.equal((await s.store.decide([lone])).allowed, true);
      assert.equal((await s.store.decide([lone])).blocked ?? 0, 0);
      assert.equal((await s.store.decide([lone])).blocked, 1);
      const withOther = await s.store.decide([tokenBucket(key('free'), 1 / 3600, 5), lone]);
      assert.deepEqual(
        [withOther.allowed, withOther.blocked, withOther.remaining[0]],
        [false, 2, 5],
        'blocked: the other check took nothing',
      );
    });

    it("overrides: an identity's own numbers, stored beside its key, decide in the same call; cleared or expired, the check's own again", async () => {
      const store = s.store;
      assert.ok(store.setOverride !== undefined && store.clearOverride !== undefined, 'the store keeps overrides');
      const check: Check = { ...tokenBucket(key('ov'), 1 / 3600, 2), overridable: true };
      await store.setOverride(check.key, { timeUs: 3_600_000_000, capacity: 5 });
      const got: number[] = [];
      for (let i = 0; i < 6; i++) {
        const d = await store.decide([check]);
        got.push(d.allowed ? (d.remaining[0] as number) : -1);
      }
      assert.deepEqual(got, [4, 3, 2, 1, 0, -1], 'burst 5 instead of 2');
      await store.clearOverride(check.key);
      assert.equal((await store.decide([check])).allowed, false, 'the own burst of 2, long spent');
      const q: Check = { ...quota(key('ovq'), 1, 86_400_000), overridable: true };
      await store.setOverride(q.key, { timeUs: 86_400_000_000, capacity: 3 }, 300);
      for (let i = 0; i < 3; i++) assert.equal((await store.decide([q])).allowed, true, `override: request ${i + 1} of 3`);
      await sleep(350);
      const after = await store.decide([q]);
      assert.deepEqual([after.allowed, after.remaining[0]], [false, -2], 'the override expired: the own limit of 1, 3 used');
      const plain = tokenBucket(key('plain'), 1 / 3600, 1);
      await store.setOverride(plain.key, { timeUs: 3_600_000_000, capacity: 9 });
      assert.equal((await store.decide([plain])).remaining[0], 0, 'a check not marked overridable never reads one');
    });

    it("overrides across identities (keys in different slots): a later denial gives back with the override's numbers", async () => {
      const [lo, hi] = identities();
      // Own numbers: a token an hour; the override: one a minute, burst 5.
      const bucket: Check = { ...tokenBucket(on('ovb', lo), 1 / 3600, 1), overridable: true };
      await s.store.setOverride?.(bucket.key, { timeUs: 60_000_000, capacity: 5 });
      const window = slidingWindow(on('ovw', hi), 1, 3_600_000);
      assert.equal((await s.store.decide([bucket, window])).allowed, true);
      const denied = await s.store.decide([bucket, window]);
      assert.deepEqual([denied.allowed, denied.remaining[0]], [false, 4]);
      assert.equal((await s.store.decide([bucket])).remaining[0], 3, 'given back one token of the override, not an hour');
    });

    settleContract(
      () => s.store,
      key,
      () => prefix,
    );
    counterContract(() => s.store, key);

    it('keeps buckets apart by key', async () => {
      const a = tokenBucket(key('x'), 0.01, 1);
      const b = tokenBucket(`${prefix}:x:{other}`, 0.01, 1);
      assert.equal((await s.store.decide([a])).allowed, true);
      assert.equal((await s.store.decide([a])).allowed, false);
      assert.equal((await s.store.decide([b])).allowed, true);
    });
  });
}
