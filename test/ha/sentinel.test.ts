import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedisClient, createRedisStore } from '../../src';
import { command, info, startSentinel, type SentinelStack } from '../../scripts/redis-stack';
import { waitUntil } from '../../scripts/wait';
import { assertDocumentedAnswers, firstServedAfter, hit, runLoad, startLimitedApp, summarize } from '../support/failover-load';
import { storeContract } from '../support/store-contract';

describe('Redis Sentinel (1 master, 2 replicas, 3 sentinels; real processes)', function () {
  this.timeout(120_000);
  let stack: SentinelStack;

  before(async () => {
    stack = await startSentinel({ downAfterMs: 2000, failoverTimeoutMs: 5000 });
  });
  // Whatever a test opened is closed even when it fails: a load loop left running would keep
  // the process alive and growing.
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  after(async () => {
    await stack?.stop();
  });

  storeContract('redis sentinel', async () => {
    const client = createRedisClient(stack.url);
    await waitUntil('the sentinel client to be ready', async () => client.status === 'ready');
    return { store: createRedisStore({ client }), close: async () => void client.disconnect() };
  });

  it('master killed under load: fail modes during the outage, correct decisions after promotion, drained bucket still drained', async () => {
    const client = createRedisClient(stack.url);
    cleanups.push(() => client.disconnect());
    await waitUntil('the sentinel client to be ready', async () => client.status === 'ready');
    const app = await startLimitedApp(createRedisStore({ client }), `ha${randomBytes(3).toString('hex')}`);
    cleanups.push(() => app.close());
    const t0 = performance.now();
    const oldMaster = await stack.master();

    // Drain a bucket, and make sure both replicas have it before the kill (WAIT): a write
    // acknowledged by the master alone may be lost with it, which the note bounds.
    for (let i = 0; i < 3; i++) assert.equal((await hit(app.url, '/drained', 'victim', t0)).status, 200);
    assert.equal((await hit(app.url, '/drained', 'victim', t0)).status, 429);
    assert.equal(await command(oldMaster.port, 'WAIT', '2', '2000'), 2);

    // Watch for the switch on every sentinel.
    let switchedAt: number | undefined;
    const watchers = stack.sentinels.map((s) => {
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
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = performance.now() - t0;
    await oldMaster.kill();
    await waitUntil('the sentinels to promote a replica', async () => switchedAt !== undefined, 30_000, 10);
    const newMaster = await stack.master();
    assert.notEqual(newMaster.port, oldMaster.port);
    await waitUntil(
      'a decision served by the new master',
      async () => {
        const s = await hit(app.url, '/closed', 'probe', t0);
        return s.status === 200;
      },
      10_000,
      10,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const samples = await load.stop();
    for (const w of watchers) w.disconnect();

    const switched = switchedAt as number;
    const resumed = firstServedAfter(samples, switched);
    const { counts, maxMs } = summarize(samples);
    const report = {
      promotionMs: Math.round(switched - killedAt),
      resumeAfterSwitchMs: resumed === undefined ? undefined : Math.round(resumed.doneAt - switched),
      maxRequestMs: maxMs,
      breaker: app.limiter.breakerState,
      counts,
    };
    console.log(`      sentinel failover: ${JSON.stringify(report)}`);

    assertDocumentedAnswers(samples, maxMs);
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
    // Decisions resumed on the new master, and state written before the kill survived.
    assert.ok(resumed !== undefined, 'decisions resumed after the switch');
    const late = samples.filter((s) => s.sentAt > (resumed?.doneAt ?? Infinity) + 200 && s.status !== 200);
    assert.deepEqual(late, [], 'no failures once resumed');
    assert.equal((await hit(app.url, '/drained', 'victim', t0)).status, 429, 'the drained bucket is still drained on the new master');

    await app.close();
    client.disconnect();
    // Leave the set whole: the old master comes back as a replica of the new one (restarted as
    // a plain master it would take writes for ~10 s before Sentinel demotes it).
    await oldMaster.restart(['--replicaof', '127.0.0.1', String(newMaster.port)]);
    await waitUntil(
      'both replicas linked to the new master',
      async () => (await info(newMaster.port, 'replication')).get('connected_slaves') === '2',
    );
  });

  it('forced failover (old master still up): the client follows +switch-master at once, not when Sentinel demotes the old master', async () => {
    const client = createRedisClient(stack.url) as Redis;
    cleanups.push(() => client.disconnect());
    await waitUntil('the sentinel client to be ready', async () => client.status === 'ready');
    const store = createRedisStore({ client });
    const key = `ff${randomBytes(3).toString('hex')}:p:{x}`;
    // One token an hour: nothing refills while the failover runs.
    const check = { key, algorithm: 'token_bucket' as const, intervalUs: 3_600_000_000, burst: 1_000_000, cost: 1 };
    await store.decide([check]);
    const before = await stack.master();
    await waitUntil(
      'a replica linked to the master',
      async () => Number((await info(before.port, 'replication')).get('connected_slaves')) >= 1,
    );
    // The bucket's write reaches the replicas before the switch (a forced failover does not
    // wait for them; what it can lose is the replication lag, see the README).
    const replicas = Number((await info(before.port, 'replication')).get('connected_slaves'));
    assert.equal(await command(before.port, 'WAIT', String(replicas), '2000'), replicas);
    const remotePort = () => (client as unknown as { stream?: { remotePort?: number } }).stream?.remotePort;
    assert.equal(remotePort(), before.port);

    let switchedAt: number | undefined;
    const sub = new Redis({ port: (stack.sentinels[0] as { port: number }).port, host: '127.0.0.1' });
    cleanups.push(() => sub.disconnect());
    sub.on('error', () => undefined);
    sub.on('message', () => {
      switchedAt ??= performance.now();
    });
    await sub.subscribe('+switch-master');
    assert.equal(await command((stack.sentinels[0] as { port: number }).port, 'SENTINEL', 'FAILOVER', stack.masterName), 'OK');
    await waitUntil('the switch', async () => switchedAt !== undefined, 30_000, 10);
    const after = await stack.master();
    assert.notEqual(after.port, before.port);
    await waitUntil('the client on the new master', async () => remotePort() === after.port && client.status === 'ready', 5_000, 5);
    const followMs = Math.round(performance.now() - (switchedAt as number));
    const d = await store.decide([check]);
    assert.equal(d.allowed, true);
    assert.equal(d.remaining[0], 1_000_000 - 2, 'the new master holds the bucket written before the switch');
    console.log(`      forced failover: client on the new master ${followMs} ms after +switch-master`);
    assert.ok(followMs < 2_000, `took ${followMs} ms (Sentinel demotes the old master only after ~10 s)`);
    sub.disconnect();
    client.disconnect();
  });
});
