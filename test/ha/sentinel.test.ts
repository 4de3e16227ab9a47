import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import Valkey from 'iovalkey';
import request from 'supertest';
import { createRateLimiter, createRedisClient, createRedisStore } from '../../src';
import { command, startSentinel, type SentinelStack } from '../../scripts/redis-stack';
import { waitUntil } from '../../scripts/wait';
import { firstServedAfter, hit, runLoad, startLimitedApp, summarize } from '../support/failover-load';
import { storeContract } from '../support/store-contract';
import { limitedApp } from '../support/limiter-app';
import { assertFailoverAnswers, assertOnlyDeadlineRefusals, decided, recordingMetrics } from './failover-checks';

describe('Redis Sentinel (1 master, 2 replicas, 3 sentinels; real processes)', function () {
  this.timeout(120_000);
  let stack: SentinelStack;
  const options = { downAfterMs: 2000, failoverTimeoutMs: 5000 };

  // The store contract shares this set; the failover tests start their own (ownSentinel).
  // After each test the shared one is brought back to the shape it started with (restore: a
  // killed node restarted as a replica of the master the sentinels agree on, every sentinel
  // seeing it healthy), so no test runs on what an earlier one left behind.
  before(async () => {
    const t = performance.now();
    stack = await startSentinel(options);
    console.log(`      shared Sentinel set started in ${Math.round(performance.now() - t)} ms`);
  });
  // Whatever a test opened is closed even when it fails: a load loop left running would keep
  // the process alive and growing. Every cleanup runs, the first failure is thrown after.
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    const failed: unknown[] = [];
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch((err: unknown) => failed.push(err));
    const t = performance.now();
    await stack?.restore();
    const ms = Math.round(performance.now() - t);
    if (ms > 1000) console.log(`      shared Sentinel set restored in ${ms} ms`);
    if (failed.length > 0) throw failed[0];
  });
  after(async () => {
    await stack?.stop();
  });

  /** A Sentinel set of the test's own, stopped (every process, by PID) after it. */
  async function ownSentinel(): Promise<SentinelStack> {
    const t = performance.now();
    const own = await startSentinel(options);
    cleanups.push(() => own.stop()); // first in, last out: after the clients and apps on it
    console.log(`      own Sentinel set started in ${Math.round(performance.now() - t)} ms`);
    return own;
  }

  storeContract('redis sentinel', async () => {
    const client = createRedisClient(stack.url);
    await waitUntil('the sentinel client to be ready', async () => client.status === 'ready');
    return { store: createRedisStore({ client }), close: async () => void client.disconnect() };
  });

  it('master killed under load: fail modes during the outage, correct decisions after promotion, drained bucket still drained', async () => {
    const own = await ownSentinel();
    const client = createRedisClient(own.url);
    cleanups.push(() => client.disconnect());
    await waitUntil('the sentinel client to be ready', async () => client.status === 'ready');
    const t0 = performance.now();
    const { metrics, recorded } = recordingMetrics(t0);
    const app = await startLimitedApp(createRedisStore({ client }), `ha${randomBytes(3).toString('hex')}`, metrics);
    cleanups.push(() => app.close());
    const oldMaster = await own.master();

    // Drain a bucket, and make sure both replicas have it before the kill (WAIT): a write
    // acknowledged by the master alone may be lost with it, which the note bounds.
    // A decision past the deadline (a busy machine) is sent again (`decided`).
    const decide = (path: string, key: string) => decided(client as Redis, () => hit(app.url, path, key, t0));
    for (let i = 0; i < 3; i++) assert.equal((await decide('/drained', 'victim')).status, 200);
    assert.equal((await decide('/drained', 'victim')).status, 429);
    assert.equal(await command(oldMaster.port, 'WAIT', '2', '10000'), 2);

    // Watch for the switch on every sentinel.
    let switchedAt: number | undefined;
    const watchers = own.sentinels.map((s) => {
      const sub = new Redis({ port: s.port, host: '127.0.0.1' });
      sub.on('error', () => undefined);
      sub.on('message', () => {
        switchedAt ??= performance.now() - t0;
      });
      return sub;
    });
    cleanups.push(() => watchers.forEach((w) => w.disconnect()));
    await Promise.all(watchers.map((w) => w.subscribe('+switch-master')));

    const keys = Array.from({ length: 50 }, (_, i) => `client-${i}`);
    const load = runLoad(app.url, keys, 8, t0);
    cleanups.push(() => load.stop());
    const before = recorded.decisions;
    await waitUntil('the load to run (100 decisions)', async () => recorded.decisions >= before + 100, 30_000, 10);
    const killedAt = performance.now() - t0;
    await oldMaster.kill();
    await waitUntil('the sentinels to promote a replica', async () => switchedAt !== undefined, 60_000, 10);
    await waitUntil('a quorum of sentinels to name the new master', async () => (await own.master()).port !== oldMaster.port, 30_000);
    const newMaster = await own.master();
    await waitUntil(
      'a decision served by the new master',
      async () => {
        const s = await hit(app.url, '/closed', 'probe', t0);
        return s.status === 200;
      },
      30_000,
      10,
    );
    // Enough decisions after it to see them go on (the load's pace is the machine's).
    // At least 1 s of them too: on a quiet machine 300 decisions fit in the 200 ms after the
    // resumption that the checks below leave out.
    const resumedDecisions = recorded.decisions;
    const resumedAt = performance.now();
    await waitUntil(
      '300 decisions after the failover, over at least 1 s',
      async () => recorded.decisions >= resumedDecisions + 300 && performance.now() - resumedAt >= 1_000,
      60_000,
      10,
    );
    const samples = await load.stop();
    for (const w of watchers) w.disconnect();

    const switched = switchedAt as number;
    const resumed = firstServedAfter(samples, switched);
    const { counts, maxMs } = summarize(samples);
    const late = samples.filter((s) => s.sentAt > (resumed?.doneAt ?? Infinity) + 200);
    const report = {
      promotionMs: Math.round(switched - killedAt),
      resumeAfterSwitchMs: resumed === undefined ? undefined : Math.round(resumed.doneAt - switched),
      maxRequestMs: maxMs,
      breaker: app.limiter.breakerState,
      counts,
      afterResumePastDeadline: late.filter((s) => s.status !== 200).map((s) => Math.round(s.doneAt - s.sentAt)),
    };
    console.log(`      sentinel failover: ${JSON.stringify(report)}`);

    assertFailoverAnswers(samples, switched);
    // The outage was seen, and the closed policy failed closed during it.
    const outage = samples.filter((s) => s.sentAt > killedAt && s.doneAt < switched);
    assert.ok(
      outage.some((s) => s.path === '/closed' && s.status === 503),
      'closed policy answered 503 during the outage',
    );
    assert.ok(
      outage.some((s) => s.path === '/open' && s.status === 200),
      'open policy let requests through during the outage',
    );
    // Decisions resumed on the new master, and state written before the kill survived. Once
    // resumed, nothing failed but, on a busy machine, a decision past the deadline (a timeout:
    // no error, no breaker opening).
    assert.ok(resumed !== undefined, 'decisions resumed after the switch');
    const closedLate = late.filter((s) => s.path === '/closed');
    assert.ok(closedLate.length > 50, `${closedLate.length} decisions after the switch`);
    const refused = assertOnlyDeadlineRefusals(late, recorded, new Set(['']), 'after the switch', (resumed?.doneAt ?? 0) + 200);
    // A client still stuck on the dead master would refuse nearly all; with two CPU-burning
    // loops beside the tests, a few percent of decisions anywhere in a run pass the deadline.
    const lateDecisions = late.filter((s) => s.path !== '/open').length;
    assert.ok(refused.length <= 0.1 * lateDecisions, `after the switch: ${refused.length} of ${lateDecisions} refused at the deadline`);
    assert.equal((await decide('/drained', 'victim')).status, 429, 'the drained bucket is still drained on the new master');
    assert.ok((await own.replicas()).length >= 1, `the new master ${newMaster.port} has a replica`);
  });

  it('iovalkey, a Sentinel client of its own: master killed, the store follows the promotion (no retry back-off to wait for)', async () => {
    const client = new Valkey({ sentinels: stack.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name: stack.masterName });
    client.on('error', () => undefined);
    cleanups.push(() => client.disconnect());
    await waitUntil('the iovalkey client to be ready', async () => client.status === 'ready');
    const limiter = createRateLimiter({
      store: createRedisStore({ client }),
      prefix: 'ha-iovalkey',
      denyCache: false,
      principal: (req) => req.get('x-user'),
      policies: { p: { algorithm: 'token_bucket', rps: 0.001, burst: 2, key: 'principal', failMode: 'closed' } },
    });
    cleanups.push(() => limiter.close());
    const app = limitedApp(limiter.limit('p'));
    const ask = async () => (await request(app).get('/').set('x-user', 'hal')).status;
    assert.equal(await ask(), 200);
    const oldMaster = await stack.master();
    assert.equal(await command(oldMaster.port, 'WAIT', '2', '10000'), 2);
    await oldMaster.kill();
    const killedAt = performance.now();
    const others = stack.dataNodes.filter((n) => n.port !== oldMaster.port);
    let promoted: number | undefined;
    await waitUntil(
      'a replica to say it is master',
      async () => {
        for (const n of others) if (((await command(n.port, 'ROLE').catch(() => [])) as string[])[0] === 'master') promoted = n.port;
        return promoted !== undefined;
      },
      60_000,
      10,
    );
    const promotedAt = performance.now();
    let status = 0;
    await waitUntil(
      'a decision on the new master',
      async () => {
        status = await ask();
        return status === 200 || status === 429;
      },
      30_000,
      10,
    );
    console.log(
      `      iovalkey sentinel: ${promoted} promoted ${Math.round(promotedAt - killedAt)} ms after the kill; deciding again ${Math.round(performance.now() - promotedAt)} ms after the promotion (answered ${status})`,
    );
    // hal's bucket moved with the data: one admission before the kill, one after, then a denial.
    assert.equal(status, 200);
    assert.equal(await ask(), 429);
  });

  it('forced failover (old master still up): the client follows +switch-master at once, not when Sentinel demotes the old master', async () => {
    const own = await ownSentinel();
    const client = createRedisClient(own.url) as Redis;
    cleanups.push(() => client.disconnect());
    await waitUntil('the sentinel client to be ready', async () => client.status === 'ready');
    const store = createRedisStore({ client });
    const key = `ff${randomBytes(3).toString('hex')}:p:{x}`;
    // One token an hour: nothing refills while the failover runs.
    const check = { key, algorithm: 'token_bucket' as const, intervalUs: 3_600_000_000, burst: 1_000_000, cost: 1 };
    await store.decide([check]);
    const before = await own.master();
    // The bucket's write reaches the replicas before the switch (a forced failover does not
    // wait for them; what it can lose is the replication lag, see the README).
    const replicas = (await own.replicas()).length;
    assert.equal(replicas, 2, 'both replicas linked to the master');
    assert.equal(await command(before.port, 'WAIT', String(replicas), '10000'), replicas);
    const remotePort = () => (client as unknown as { stream?: { remotePort?: number } }).stream?.remotePort;
    assert.equal(remotePort(), before.port);

    let switchedAt: number | undefined;
    const leader = own.sentinels[0] as { port: number };
    const sub = new Redis({ port: leader.port, host: '127.0.0.1' });
    cleanups.push(() => sub.disconnect());
    sub.on('error', () => undefined);
    sub.on('message', () => {
      switchedAt ??= performance.now();
    });
    await sub.subscribe('+switch-master');
    assert.equal(await command(leader.port, 'SENTINEL', 'FAILOVER', own.masterName), 'OK');
    await waitUntil('the switch', async () => switchedAt !== undefined, 60_000, 10);
    await waitUntil('a quorum of sentinels to name the new master', async () => (await own.master()).port !== before.port, 30_000);
    const after = await own.master();
    // Where the client is, and what the old master says it is, at the moment it is seen there:
    // a client that followed only Sentinel's demotion of the old master (READONLY on it, ~9 s
    // after the switch here) would be seen there only once the old master says it is a replica.
    let oldRoleThen: string | undefined;
    await waitUntil(
      'the client on the new master',
      async () => {
        if (remotePort() !== after.port || client.status !== 'ready') return false;
        oldRoleThen = ((await command(before.port, 'ROLE')) as [string])[0];
        return true;
      },
      30_000,
      5,
    );
    const followMs = Math.round(performance.now() - (switchedAt as number));
    const d = await store.decide([check]);
    assert.equal(d.allowed, true);
    assert.equal(d.remaining[0], 1_000_000 - 2, 'the new master holds the bucket written before the switch');
    console.log(
      `      forced failover: client on the new master ${followMs} ms after +switch-master; old master still ${oldRoleThen} then`,
    );
    assert.equal(
      oldRoleThen,
      'master',
      `the client reached the new master before the old one was demoted (${followMs} ms after +switch-master)`,
    );
  });
});
