import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import express from 'express';
import request from 'supertest';
import { createRateLimiter, createRedisClient, createRedisStore, redisCheck } from '../../src';
import { command, startCluster, waitUntil, type ClusterStack } from '../../scripts/redis-stack';
import { assertDocumentedAnswers, firstServedAfter, hit, runLoad, startLimitedApp, summarize } from '../support/failover-load';
import { LIMITER_ACL_CLUSTER } from '../support/redis-acl';
import { storeContract } from '../support/store-contract';

describe('Redis Cluster (3 masters, 3 replicas; real processes)', function () {
  this.timeout(120_000);
  let stack: ClusterStack;

  before(async () => {
    stack = await startCluster({ nodeTimeoutMs: 1000 });
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

  storeContract('redis cluster', async () => {
    const client = createRedisClient(stack.url) as Cluster;
    await waitUntil('the cluster client to be ready', async () => client.status === 'ready');
    return { store: createRedisStore({ client }), close: async () => void client.disconnect() };
  });

  it('works under the documented ACL (limiter commands, ~rl:*, CLUSTER SLOTS/INFO) on every node', async () => {
    const user = `limiter${randomBytes(3).toString('hex')}`;
    for (const n of stack.nodes) await command(n.port, 'ACL', 'SETUSER', user, 'reset', '>pw', ...LIMITER_ACL_CLUSTER);
    const client = createRedisClient(stack.url.replace('redis+cluster://', `redis+cluster://${user}:pw@`)) as Cluster;
    cleanups.push(() => client.disconnect());
    await waitUntil('the cluster client to be ready', async () => client.status === 'ready');
    const limiter = createRateLimiter({
      store: createRedisStore({ client }),
      prefix: 'rl',
      denyCache: false,
      policies: { tb: { algorithm: 'token_bucket', rps: 0.001, burst: 2, key: (req) => req.get('x-key'), failMode: 'closed' } },
    });
    cleanups.push(() => limiter.close());
    const app = express();
    app.get('/x', limiter.limit('tb'), (_req, res) => res.json({ ok: true }));
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) {
      const key = `${user}-${id}`;
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) statuses.push((await request(app).get('/x').set('x-key', key)).status);
      assert.deepEqual(statuses, [200, 200, 429], key);
    }
    await redisCheck(client)();
  });

  it('decides keys of every shard in one turn (one script call per slot) and loads the script on each node', async () => {
    const client = createRedisClient(stack.url) as Cluster;
    cleanups.push(() => client.disconnect());
    await waitUntil('the cluster client to be ready', async () => client.status === 'ready');
    const store = createRedisStore({ client });
    const prefix = `cl${randomBytes(3).toString('hex')}`;
    const ids = Array.from({ length: 300 }, (_, i) => `id${i}`);
    const decisions = await Promise.all(ids.map((id) => store.decide([{ key: `${prefix}:p:{${id}}`, kind: 1, a: 1_000_000, b: 2, cost: 1 }])));
    assert.ok(decisions.every((d) => d.allowed && d.remaining[0] === 1));
    const masters = new Set<number>();
    for (const id of ids) masters.add((await stack.masterOf(calculateSlot(id))).port);
    assert.equal(masters.size, 3, 'the keys spread over the three masters');
    for (const port of masters) {
      const stats = String(await command(port, 'INFO', 'commandstats'));
      assert.match(stats, /cmdstat_evalsha:calls=\d+/, `the script ran on ${port}`);
    }
    client.disconnect();
  });

  it('master killed under load: its shard fails by its fail mode, the others never notice, decisions resume after the replica takes over', async () => {
    const client = createRedisClient(stack.url) as Cluster;
    cleanups.push(() => client.disconnect());
    await waitUntil('the cluster client to be ready', async () => client.status === 'ready');
    const app = await startLimitedApp(createRedisStore({ client }), `ha${randomBytes(3).toString('hex')}`);
    cleanups.push(() => app.close());
    const t0 = performance.now();

    const victimSlot = calculateSlot('victim');
    const master = await stack.masterOf(victimSlot);
    const replica = await stack.replicaOf(master.port);
    // Keys on the killed shard, and keys elsewhere.
    const onVictim: string[] = [];
    const elsewhere: string[] = [];
    for (let i = 0; onVictim.length < 20 || elsewhere.length < 20; i++) {
      const id = `client-${i}`;
      const owner = await stack.masterOf(calculateSlot(id));
      if (owner.port === master.port) {
        if (onVictim.length < 20) onVictim.push(id);
      } else if (elsewhere.length < 20) elsewhere.push(id);
    }

    for (let i = 0; i < 3; i++) assert.equal((await hit(app.url, '/drained', 'victim', t0)).status, 200);
    assert.equal((await hit(app.url, '/drained', 'victim', t0)).status, 429);
    assert.equal(await command(master.port, 'WAIT', '1', '2000'), 1);

    // One decision per key first: connections to every master are open before the clock runs.
    for (const id of [...onVictim, ...elsewhere]) assert.equal((await hit(app.url, '/closed', id, t0)).status, 200);
    const check = redisCheck(client);
    await check(); // every master answers PING
    const load = runLoad(app.url, [...onVictim, ...elsewhere], 8, t0);
    cleanups.push(() => load.stop());
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = performance.now() - t0;
    await master.kill();
    await assert.rejects(check(), /PING failed|no connection to master|has no master/, 'the readiness check sees the dead master');
    let promotedAt = 0;
    await waitUntil(
      'the replica to take over',
      async () => {
        const role = (await command(replica.port, 'ROLE')) as [string];
        if (role[0] !== 'master') return false;
        promotedAt = performance.now() - t0;
        return true;
      },
      30_000,
      10,
    );
    await waitUntil('a decision on the failed shard', async () => (await hit(app.url, '/closed', onVictim[0] as string, t0)).status === 200, 10_000, 10);
    await new Promise((r) => setTimeout(r, 1000));
    const samples = await load.stop();
    await waitUntil('the readiness check to pass again', async () => {
      await check();
      return true;
    }, 10_000, 50);

    const victims = new Set(onVictim);
    const resumed = firstServedAfter(samples, promotedAt, victims);
    const { counts, maxMs } = summarize(samples);
    const report = {
      promotionMs: Math.round(promotedAt - killedAt),
      resumeAfterPromotionMs: resumed === undefined ? undefined : Math.round(resumed.doneAt - promotedAt),
      maxRequestMs: maxMs,
      counts,
      failedShard503: samples.filter((s) => victims.has(s.key) && s.status === 503).length,
    };
    console.log(`      cluster failover: ${JSON.stringify(report)}`);

    assertDocumentedAnswers(samples, maxMs);
    const outage = samples.filter((s) => s.sentAt > killedAt && s.doneAt < promotedAt);
    assert.ok(outage.some((s) => s.path === '/closed' && victims.has(s.key) && s.status === 503), 'the failed shard failed closed');
    // One breaker per shard: the other masters kept deciding throughout.
    const others = samples.filter((s) => s.path === '/closed' && !victims.has(s.key));
    assert.ok(others.length > 100);
    assert.deepEqual(others.filter((s) => s.status !== 200).map((s) => ({ ...s, killedAt: Math.round(killedAt), promotedAt: Math.round(promotedAt) })), [], 'keys on the other shards were never refused');
    assert.ok(resumed !== undefined, 'decisions resumed on the failed shard');
    assert.equal((await hit(app.url, '/drained', 'victim', t0)).status, 429, 'the drained bucket is still drained on the promoted replica');

    await app.close();
    client.disconnect();
    // Leave a whole cluster behind: the killed node rejoins as a replica of the promoted one.
    await master.restart();
    await waitUntil('every node to agree on 3 masters and 3 replicas again', async () => {
      for (const n of stack.nodes) {
        const text = String(await command(n.port, 'CLUSTER', 'NODES'));
        const lines = text.trim().split('\n').filter((l) => !l.includes('fail') && l.includes('connected'));
        if (lines.filter((l) => / (myself,)?master /.test(l)).length !== 3 || lines.filter((l) => / (myself,)?slave /.test(l)).length !== 3) return false;
      }
      return true;
    }, 30_000, 100);
  });
});
