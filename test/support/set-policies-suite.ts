// RateLimiter.setPolicies on a real store: run on memory (test/unit) and on Redis (test/integration).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { createRateLimiter, OptionsError, type Check, type PolicyOptions, type RateLimiter, type RateLimitStore } from '../../src';
import { TEST_DEADLINE_MS } from './deadline';

/** A store for one test, and what removes what the test left in it. */
export interface ReloadStoreFixture {
  readonly store: RateLimitStore;
  /** Removes the keys under `prefix` (never the whole database). */
  cleanup(prefix: string): Promise<void>;
}

/** 1 token per 1000 s: a drained bucket stays drained for the whole test. */
const bucket = (burst: number): PolicyOptions => ({ algorithm: 'token_bucket', rps: 0.001, burst });
const windowOf = (limit: number): PolicyOptions => ({ algorithm: 'sliding_window', limit, windowSeconds: 600 });

/** The statuses of `n` requests in a row. */
async function statuses(app: express.Express, path: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await request(app).get(path)).status);
  return out;
}

export function setPoliciesSuite(storeName: string, fixture: () => Promise<ReloadStoreFixture>): void {
  describe(`RateLimiter.setPolicies (${storeName})`, () => {
    let f: ReloadStoreFixture;
    let prefix: string;
    let limiter: RateLimiter | undefined;
    beforeEach(async () => {
      f = await fixture();
      prefix = `rlreload${randomBytes(4).toString('hex')}`;
    });
    afterEach(async () => {
      await limiter?.close();
      limiter = undefined;
      await f.cleanup(prefix);
    });

    /** The table's catch-all: the other paths of these apps pass unlimited. */
    const REST = { surfaceId: 'rest', path: '/*', policies: [], exempt: true };

    function appFor(l: RateLimiter): express.Express {
      const app = express();
      app.get('/limit', l.limit('p', 'w'), (_req, res) => res.json({ ok: true }));
      app.use(l.surfaces());
      app.get('/surface', (_req, res) => res.json({ ok: true }));
      return app;
    }

    it('a policy that keeps its name keeps its bucket; the new numbers apply on the next request (limit() and surfaces())', async () => {
      limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store: f.store,
        prefix,
        policies: { p: bucket(2), w: windowOf(2), s: bucket(1) },
        surfaces: [{ surfaceId: 'surface', path: '/surface', policies: ['s'] }, REST],
      });
      const app = appFor(limiter);
      // Drained under the old numbers; the last denial is now in the deny cache.
      assert.deepEqual(await statuses(app, '/limit', 3), [200, 200, 429]);
      assert.deepEqual(await statuses(app, '/surface', 2), [200, 429]);

      limiter.setPolicies({ p: bucket(5), w: windowOf(4), s: bucket(3) });

      const first = await request(app).get('/limit');
      assert.equal(first.status, 200, 'the new numbers apply at once (and the deny cache forgot the old denial)');
      assert.match(first.headers['ratelimit-policy'] as string, /"p";q=5;w=\d+, "w";q=4;w=600/);
      // The window allows 4 in all and 2 were taken: 1 more after `first`. Had the state been
      // lost, 3 more would pass.
      assert.deepEqual(await statuses(app, '/limit', 2), [200, 429]);
      // The surface's bucket: 3 in all, 1 taken before the reload.
      assert.deepEqual(await statuses(app, '/surface', 3), [200, 200, 429]);
      // A middleware handed out after the reload: the new numbers, the same bucket.
      const later = express();
      later.get('/later', limiter.limit('p'), (_req, res) => res.json({ ok: true }));
      const r = await request(later).get('/later');
      assert.deepEqual([r.status, r.headers['ratelimit-policy']], [200, '"p";q=5;w=5000']);
    });

    it('an invalid set throws OptionsError, changes nothing, and the old policies keep deciding', async () => {
      limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store: f.store,
        prefix,
        policies: { p: bucket(2), w: windowOf(3), s: bucket(1) },
        surfaces: [{ surfaceId: 'surface', path: '/surface', policies: ['s'] }, REST],
      });
      const l = limiter;
      const app = appFor(l);
      assert.equal((await request(app).get('/limit')).status, 200);
      const refused = (fn: () => void, pattern: RegExp) =>
        assert.throws(fn, (err: unknown) => {
          assert.ok(err instanceof OptionsError, String(err));
          assert.match(err.message, pattern);
          return true;
        });
      refused(() => l.setPolicies({ p: { algorithm: 'token_bucket', rps: 0, burst: 9 }, w: windowOf(9), s: bucket(9) }), /policy "p": rps/);
      refused(
        () =>
          l.setPolicies({ p: bucket(9), w: windowOf(9), s: bucket(9) }, [
            { surfaceId: 'surface', path: '/surface', policies: ['nope'] },
            REST,
          ]),
        /unknown policy "nope" in surface "surface"/,
      );
      refused(() => l.setPolicies({ p: bucket(9), w: windowOf(9), s: bucket(9), Bad: bucket(1) }), /policy name/);
      // The same key would hold a sorted set where a GCRA integer was.
      refused(() => l.setPolicies({ p: windowOf(9), w: windowOf(9), s: bucket(9) }), /cannot change the algorithm of policy "p"/);

      const next = await request(app).get('/limit');
      assert.equal(next.status, 200);
      assert.match(next.headers['ratelimit-policy'] as string, /"p";q=2;w=\d+, "w";q=3;w=600/, 'the old numbers');
      assert.deepEqual(await statuses(app, '/limit', 1), [429]);
      assert.deepEqual(await statuses(app, '/surface', 2), [200, 429]);
    });

    it('refuses to drop a policy a limit() middleware or a kept surface names, naming them; new surfaces may drop theirs', async () => {
      limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store: f.store,
        prefix,
        policies: { p: bucket(2), w: windowOf(2), s: bucket(1) },
        surfaces: [{ surfaceId: 'surface', path: '/surface', policies: ['s', 'w'] }, REST],
      });
      const l = limiter;
      const app = appFor(l);
      assert.throws(
        () => l.setPolicies({ p: bucket(9) }),
        (err: unknown) => {
          assert.ok(err instanceof OptionsError);
          assert.match(err.message, /"w" \(named by limit\("p", "w"\), surface "surface"\)/);
          assert.match(err.message, /"s" \(named by surface "surface"\)/);
          return true;
        },
      );
      assert.match((await request(app).get('/limit')).headers['ratelimit-policy'] as string, /"p";q=2;/, 'nothing changed');
      // New surfaces that no longer name "s": it may go; "w" is still named by limit().
      l.setPolicies({ p: bucket(9), w: windowOf(9) }, [{ surfaceId: 'surface', path: '/surface', policies: ['p'] }, REST]);
      const s = await request(app).get('/surface');
      assert.equal(s.status, 200);
      assert.match(s.headers['ratelimit-policy'] as string, /^"p";q=9;w=\d+$/);
    });

    it('a request already being decided finishes with the policies it started with', async () => {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const seen: Check[][] = [];
      let hold = true;
      const slow: RateLimitStore = {
        name: f.store.name,
        async decide(checks, options) {
          seen.push([...checks]);
          if (hold) await held;
          return f.store.decide(checks, options);
        },
        close: () => Promise.resolve(),
      };
      limiter = createRateLimiter({ store: slow, prefix, policies: { p: bucket(2), w: windowOf(2) }, deadlineMs: 10_000 });
      const app = express();
      app.get('/limit', limiter.limit('p', 'w'), (_req, res) => res.json({ ok: true }));
      const inFlight = request(app)
        .get('/limit')
        .then((r) => r);
      while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      limiter.setPolicies({ p: bucket(7), w: windowOf(7) });
      hold = false;
      const after = await request(app).get('/limit');
      release();
      const before = await inFlight;
      assert.equal(before.status, 200);
      assert.match(before.headers['ratelimit-policy'] as string, /"p";q=2;w=\d+, "w";q=2;w=600/);
      assert.equal((seen[0]?.[0] as Check & { burst: number }).burst, 2);
      assert.equal(after.status, 200);
      assert.match(after.headers['ratelimit-policy'] as string, /"p";q=7;w=\d+, "w";q=7;w=600/);
      assert.equal((seen[1]?.[0] as Check & { burst: number }).burst, 7);
    });

    it('a denial decided under the old policies but answered after the swap is not remembered (deny cache)', async () => {
      let release!: () => void;
      let held: Promise<void> | undefined;
      let calls = 0;
      const slow: RateLimitStore = {
        name: f.store.name,
        async decide(checks, options) {
          calls++;
          if (held !== undefined) await held;
          return f.store.decide(checks, options);
        },
        close: () => Promise.resolve(),
      };
      limiter = createRateLimiter({ store: slow, prefix, policies: { p: bucket(1) }, deadlineMs: 10_000 });
      const app = express();
      app.get('/limit', limiter.limit('p'), (_req, res) => res.json({ ok: true }));
      assert.equal((await request(app).get('/limit')).status, 200);
      held = new Promise<void>((r) => (release = r));
      const inFlight = request(app)
        .get('/limit')
        .then((r) => r);
      while (calls < 2) await new Promise((r) => setTimeout(r, 5));
      limiter.setPolicies({ p: bucket(3) });
      held = undefined;
      release();
      const denied = await inFlight;
      assert.equal(denied.status, 429);
      assert.match(denied.headers['ratelimit-policy'] as string, /"p";q=1;/, 'decided under the old numbers');
      const next = await request(app).get('/limit');
      assert.equal(next.status, 200, 'burst 3 with 1 taken: the old denial was not remembered');
      assert.match(next.headers['ratelimit-policy'] as string, /"p";q=3;/);
    });
  });
}
