// TLS on every topology, against real redis-server processes started with a TLS port
// (certificates made at test time, test/support/tls.ts): a Cluster with `tls-cluster yes` and
// mutual TLS, and a Sentinel set whose sentinels and data nodes speak only TLS to clients. Each
// node keeps a plain port for the test's own administration; the client is given only the TLS
// ports. What is checked: decisions over TLS with a client certificate, a refusal (fail mode,
// the cause said) without one or with the wrong CA, and a failover on TLS that the limiter
// follows.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { createHealth, createRateLimiter, createRedisClient, createRedisStore, redisCheck, type RateLimiter } from '../../src';
import { waitUntil } from '../../scripts/wait';
import { command, type ClusterStack, type RedisNode } from '../../scripts/redis-stack';
import { TEST_DEADLINE_MS } from '../support/deadline';
import { limitedApp } from '../support/limiter-app';
import { makePki, type TestPki } from '../support/tls';
import { startTlsCluster, startTlsSentinel, type TlsSentinel } from '../support/tls-stacks';
import { createCluster as createNodeRedisCluster } from 'redis';
import Valkey from 'iovalkey';
import type { RedisStoreClient } from '../../src';

const limiterOn = (client: RedisStoreClient, prefix: string): RateLimiter =>
  createRateLimiter({
    deadlineMs: TEST_DEADLINE_MS,
    store: createRedisStore({ client }),
    prefix,
    denyCache: false,
    principal: (req) => req.get('x-user'),
    policies: { p: { algorithm: 'token_bucket', rps: 0.001, burst: 2, key: 'principal', failMode: 'closed' } },
  });

/** Three requests of one user: the burst of 2, then a denial; every one decided by Redis. */
async function decides(limiter: RateLimiter, user: string): Promise<number[]> {
  const app = limitedApp(limiter.limit('p'));
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await request(app).get('/').set('x-user', user)).status);
  return statuses;
}

/** A readiness check's answer for `client`: 200, or 503 and what it says of Redis. */
async function readiness(client: Redis | Cluster): Promise<{ status: number; text: string }> {
  const health = createHealth({ checks: [{ name: 'redis', run: redisCheck(client), timeoutMs: 1000 }], cacheMs: 0 });
  const res = await request(limitedApp(health.ready(), { path: '/ready' })).get('/ready');
  return { status: res.status, text: JSON.stringify(res.body) };
}

describe('TLS on every topology (mutual TLS, certificates made here)', function () {
  this.timeout(120_000);
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  describe('Cluster, tls-cluster yes, client certificates required', () => {
    let stack: ClusterStack;
    /** The TLS port of the node on each plain port. */
    let tlsPort: ReadonlyMap<number, number>;
    let url: string;
    const clients: (Redis | Cluster)[] = [];

    before(async () => {
      const started = await startTlsCluster(pki);
      ({ stack, tlsPort, url } = started);
      console.log(`      TLS cluster started in ${started.startedInMs} ms: ${url}`);
    });
    afterEach(() => {
      for (const c of clients.splice(0)) c.disconnect();
    });
    after(async () => {
      await stack?.stop();
    });

    const open = (tls: Parameters<typeof createRedisClient>[1]) => {
      const c = createRedisClient(url, { onError: () => undefined, ...tls });
      clients.push(c);
      return c as Cluster;
    };

    /** Users whose keys (policy `p` under `prefix`) fall on each of the three masters. */
    async function usersOnEveryMaster(prefix: string): Promise<string[]> {
      const users: string[] = [];
      const masters = new Set<number>();
      for (let i = 0; users.length < 3 && i < 1000; i++) {
        const master = (await stack.masterOf(calculateSlot(`${prefix}:p:{p:u${i}}`))).port;
        if (!masters.has(master)) {
          masters.add(master);
          users.push(`u${i}`);
        }
      }
      assert.equal(users.length, 3);
      return users;
    }

    /** Kills the master of `key`'s slot and waits for its replica to say it is master; `restore()` brings the cluster back. */
    async function killMasterOf(key: string): Promise<{
      killedAt: number;
      promotedAt: number;
      scripts(): Promise<{ noscript: number; loaded: number }>;
      restore(): Promise<void>;
    }> {
      const master = await stack.masterOf(calculateSlot(key));
      const replica = await stack.replicaOf(master.port);
      await master.kill();
      const killedAt = performance.now();
      await waitUntil(
        `the replica ${replica.port} promoted`,
        async () => ((await command(replica.port, 'ROLE')) as string[])[0] === 'master',
        30_000,
        20,
      );
      const promotedAt = performance.now();
      return {
        killedAt,
        promotedAt,
        /**
         * What the promoted replica (which never ran the scripts as a replica) has seen of them:
         * NOSCRIPT replies given, SCRIPT LOAD calls taken.
         */
        async scripts() {
          const text = `${String(await command(replica.port, 'INFO', 'errorstats'))}${String(await command(replica.port, 'INFO', 'commandstats'))}`;
          const n = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
          return { noscript: n(/errorstat_NOSCRIPT:count=(\d+)/), loaded: n(/cmdstat_script\|load:calls=(\d+)/) };
        },
        async restore() {
          await master.restart();
          await stack.restore();
        },
      };
    }

    /** Asks for `user` every 20 ms until the limiter decides (200 or 429, not a fail mode's 503). */
    async function decidedAgain(app: ReturnType<typeof limitedApp>, user: string): Promise<{ status: number; resumedAt: number }> {
      let status = 0;
      await waitUntil(
        'a decision on the promoted replica',
        async () => {
          status = (await request(app).get('/').set('x-user', user)).status;
          return status === 200 || status === 429;
        },
        30_000,
        20,
      );
      return { status, resumedAt: performance.now() };
    }

    it('decides over TLS with a client certificate, on every shard; the client is handed TLS ports only', async () => {
      const client = open({ tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
      await waitUntil('the TLS cluster client to be ready', async () => client.status === 'ready', 20_000);
      const limiter = limiterOn(client, 'tlsc');
      const users = await usersOnEveryMaster('tlsc');
      for (const u of users) assert.deepEqual(await decides(limiter, u), [200, 200, 429], u);
      const tlsPorts = new Set(tlsPort.values());
      const used = client.nodes('all').map((n) => n.options.port as number);
      assert.ok(
        used.length >= 3 && used.every((p) => tlsPorts.has(p)),
        `nodes: ${used.join(', ')}; TLS ports: ${[...tlsPorts].join(', ')}`,
      );
      assert.equal((await readiness(client)).status, 200);
      await limiter.close();
    });

    it('without a client certificate, or trusting another CA, nothing is decided: the fail mode answers and readiness says why', async () => {
      for (const [label, tls, cause] of [
        ['no client certificate', { ca: pki.ca }, /certificate|alert|socket|reset|closed/i],
        ['another CA', { ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey }, /certificate|self.signed|verify/i],
      ] as const) {
        const client = open({ tls: { ...tls } });
        const limiter = limiterOn(client, 'tlsc-refused');
        const statuses = await decides(limiter, `refused-${label}`);
        assert.deepEqual(statuses, [503, 503, 503], label);
        // The refusals above may come before any handshake was tried (no offline queue: a call
        // fails at once while the cluster is not ready); readiness names the cause once one failed,
        // and is 503 all along.
        let ready = await readiness(client);
        await waitUntil(
          `${label}: readiness to name the cause`,
          async () => {
            ready = await readiness(client);
            assert.equal(ready.status, 503, label);
            return cause.test(ready.text);
          },
          10_000,
          50,
        ).catch(() => undefined);
        console.log(`      ${label}: readiness ${ready.text}`);
        assert.equal(ready.status, 503, label);
        assert.match(ready.text, cause, `${label}: ${ready.text}`);
        await limiter.close();
      }
    });

    it('a master killed: its replica is promoted and the TLS client decides there again', async () => {
      const client = open({ tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
      await waitUntil('the TLS cluster client to be ready', async () => client.status === 'ready', 20_000);
      const limiter = limiterOn(client, 'tlsc-failover');
      const user = 'failover-user';
      const app = limitedApp(limiter.limit('p'));
      assert.equal((await request(app).get('/').set('x-user', user)).status, 200);
      const { killedAt, promotedAt, scripts, restore } = await killMasterOf(`tlsc-failover:p:{p:${user}}`);
      const { status, resumedAt } = await decidedAgain(app, user);
      console.log(
        `      TLS cluster: promoted ${Math.round(promotedAt - killedAt)} ms after the kill; deciding again ${Math.round(resumedAt - promotedAt)} ms after the promotion (answered ${status})`,
      );
      // The scripts were loaded on the new master when the client connected to it, before a decision needed them.
      const seen = await scripts();
      assert.ok(seen.noscript === 0 && seen.loaded >= 3, `the promoted replica: ${JSON.stringify(seen)}`);
      await limiter.close();
      await restore();
    });

    it('node-redis: a cluster client of its own (mutual TLS) decides on every shard and follows a master killed', async () => {
      const client = createNodeRedisCluster({
        rootNodes: [...tlsPort.values()].map((p) => ({ url: `rediss://127.0.0.1:${p}` })),
        defaults: { socket: { tls: true, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } },
      });
      client.on('error', () => undefined);
      await client.connect();
      const limiter = limiterOn(client, 'tlsc-node-redis');
      let restoreCluster: (() => Promise<void>) | undefined;
      try {
        const app = limitedApp(limiter.limit('p'));
        const users = await usersOnEveryMaster('tlsc-node-redis');
        for (const u of users) assert.deepEqual(await decides(limiter, u), [200, 200, 429], u);
        const tlsPorts = new Set(tlsPort.values());
        assert.ok(
          client.masters.every((m) => tlsPorts.has(m.port)),
          `masters: ${client.masters.map((m) => m.port).join(', ')}`,
        );
        const user = 'node-redis-failover';
        assert.equal((await request(app).get('/').set('x-user', user)).status, 200);
        const killed = await killMasterOf(`tlsc-node-redis:p:{p:${user}}`);
        restoreCluster = killed.restore;
        const { killedAt, promotedAt } = killed;
        const { status, resumedAt } = await decidedAgain(app, user);
        const seen = await killed.scripts();
        assert.ok(seen.noscript === 0 && seen.loaded >= 3, `the promoted replica: ${JSON.stringify(seen)}`);
        console.log(
          `      node-redis TLS cluster: promoted ${Math.round(promotedAt - killedAt)} ms after the kill; deciding again ${Math.round(resumedAt - promotedAt)} ms after the promotion (answered ${status})`,
        );
        // The bucket moved with the data: one admission before the kill, one after, then a denial.
        assert.equal(status, 200);
        assert.equal((await request(app).get('/').set('x-user', user)).status, 429);
      } finally {
        await limiter.close();
        client.destroy();
        await restoreCluster?.();
      }
    });
  });

  describe('Sentinel, TLS to the sentinels and to the data nodes, client certificates required', () => {
    let set: TlsSentinel;
    /** plain port -> TLS port */
    let tls: ReadonlyMap<number, number>;
    let master: RedisNode;
    let replica: RedisNode;
    let sentinel: RedisNode;
    let url: string;
    const clients: Redis[] = [];

    before(async () => {
      set = await startTlsSentinel(pki, 'tlsmaster');
      ({ master, replica, sentinel, url } = set);
      tls = set.tlsPort;
    });
    afterEach(() => {
      for (const c of clients.splice(0)) c.disconnect();
    });
    after(async () => {
      await set?.stop();
    });

    const open = (o: Parameters<typeof createRedisClient>[1]) => {
      const c = createRedisClient(url, { onError: () => undefined, ...o }) as Redis;
      clients.push(c);
      return c;
    };

    it('decides over TLS (sentinels and data nodes) with a client certificate', async () => {
      const client = open({ tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
      await waitUntil('the TLS sentinel client to be ready', async () => client.status === 'ready', 20_000);
      const stream = (client as unknown as { stream: { encrypted?: boolean; remotePort?: number } }).stream;
      assert.equal(stream.encrypted, true, 'the data-node connection is TLS');
      assert.equal(stream.remotePort, tls.get(master.port), 'to the TLS port the sentinel names');
      const limiter = limiterOn(client, 'tlss');
      assert.deepEqual(await decides(limiter, 'alice'), [200, 200, 429]);
      assert.equal((await readiness(client)).status, 200);
      await limiter.close();
    });

    it('sentinelTls: false reaches TLS data nodes through plain-text sentinels; a TLS-only sentinel port refuses it', async () => {
      // The sentinel's plain port (administration) stands in for a plain-text sentinel.
      const plain = createRedisClient(`rediss+sentinel://127.0.0.1:${sentinel.port}/tlsmaster`, {
        onError: () => undefined,
        sentinelTls: false,
        tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      }) as Redis;
      clients.push(plain);
      await waitUntil('the client to be ready', async () => plain.status === 'ready', 20_000);
      const limiter = limiterOn(plain, 'tlss-plain-sentinel');
      assert.deepEqual(await decides(limiter, 'bob'), [200, 200, 429]);
      await limiter.close();
      // Plain text to the sentinel's TLS port: never a session.
      const wrong = open({ sentinelTls: false, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
      const refused = limiterOn(wrong, 'tlss-wrong');
      assert.deepEqual(await decides(refused, 'carol'), [503, 503, 503]);
      await refused.close();
    });

    it('without a client certificate nothing is decided: the fail mode answers and readiness says why', async () => {
      const client = open({ tls: { ca: pki.ca } });
      const limiter = limiterOn(client, 'tlss-refused');
      assert.deepEqual(await decides(limiter, 'dave'), [503, 503, 503]);
      const ready = await readiness(client);
      assert.equal(ready.status, 503);
      console.log(`      no client certificate: readiness ${ready.text}`);
      assert.match(ready.text, /sentinel/i, ready.text);
      await limiter.close();
    });

    it('a failover on TLS: the sentinel promotes the replica and the client decides there', async () => {
      const client = open({ tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
      await waitUntil('the TLS sentinel client to be ready', async () => client.status === 'ready', 20_000);
      const limiter = limiterOn(client, 'tlss-failover');
      const app = limitedApp(limiter.limit('p'));
      assert.equal((await request(app).get('/').set('x-user', 'erin')).status, 200);
      // Replication is asynchronous: the admission must have reached the replica before it is
      // promoted, or a forced failover may lose it (Redis's own property, not the limiter's).
      const offset = (text: unknown) => Number(/master_repl_offset:(\d+)/.exec(String(text))?.[1] ?? -1);
      const written = offset(await command(master.port, 'INFO', 'replication'));
      await waitUntil(
        'the replica has the admission',
        async () => offset(await command(replica.port, 'INFO', 'replication')) >= written,
        10_000,
        20,
      );
      const t = performance.now();
      await command(sentinel.port, 'SENTINEL', 'FAILOVER', 'tlsmaster');
      await waitUntil('the replica promoted', async () => ((await command(replica.port, 'ROLE')) as string[])[0] === 'master', 30_000, 20);
      const promotedAt = performance.now();
      await waitUntil(
        'the client on the new master',
        async () => (client as unknown as { stream?: { remotePort?: number } }).stream?.remotePort === tls.get(replica.port),
        30_000,
        20,
      );
      let status = 0;
      await waitUntil(
        'a decision on the new master',
        async () => {
          status = (await request(app).get('/').set('x-user', 'erin')).status;
          return status === 200 || status === 429;
        },
        30_000,
        20,
      );
      console.log(
        `      TLS sentinel: promoted ${Math.round(promotedAt - t)} ms after SENTINEL FAILOVER; deciding on the new master ${Math.round(performance.now() - promotedAt)} ms after the promotion (answered ${status})`,
      );
      // The state moved with the data: erin's bucket held one admission before the failover.
      assert.equal(status, 200);
      assert.equal((await request(app).get('/').set('x-user', 'erin')).status, 429);
      await limiter.close();
    });

    it('iovalkey: a Sentinel client of its own (TLS to sentinels and data nodes) decides and follows a failover', async () => {
      // The earlier failover may still be finishing (the old master is turned into a replica a
      // while after the promotion, and its data replaced): wait for one master, one replica in
      // sync, and the sentinel naming that master, before anything is written.
      const roles = async () => Promise.all([master, replica].map(async (n) => (await command(n.port, 'ROLE')) as string[]));
      let current = master;
      let next = replica;
      await waitUntil(
        'one master, one replica in sync, named by the sentinel',
        async () => {
          const r = await roles();
          const m = r.findIndex((x) => x[0] === 'master');
          const named = (await command(sentinel.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'tlsmaster')) as string[];
          if (m < 0 || r.filter((x) => x[0] === 'master').length !== 1 || !r.some((x) => x[0] === 'slave' && x[3] === 'connected'))
            return false;
          current = [master, replica][m] as RedisNode;
          next = [master, replica][1 - m] as RedisNode;
          return Number(named[1]) === tls.get(current.port);
        },
        30_000,
        50,
      );
      const tlsOptions = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
      const client = new Valkey({
        sentinels: [{ host: '127.0.0.1', port: tls.get(sentinel.port) as number }],
        name: 'tlsmaster',
        tls: tlsOptions,
        sentinelTLS: tlsOptions,
        enableTLSForSentinelMode: true,
      });
      client.on('error', () => undefined);
      const limiter = limiterOn(client, 'tlss-iovalkey');
      try {
        await waitUntil('the iovalkey client to be ready', async () => client.status === 'ready', 20_000);
        assert.equal((client as unknown as { stream: { encrypted?: boolean } }).stream.encrypted, true);
        assert.deepEqual(await decides(limiter, 'frank'), [200, 200, 429]);
        const app = limitedApp(limiter.limit('p'));
        assert.equal((await request(app).get('/').set('x-user', 'gina')).status, 200);
        // Replication is asynchronous: gina's admission must be on the replica before it is promoted.
        const offset = async (n: RedisNode) =>
          Number(/master_repl_offset:(\d+)/.exec(String(await command(n.port, 'INFO', 'replication')))?.[1] ?? -1);
        const written = await offset(current);
        await waitUntil('the replica has the admission', async () => (await offset(next)) >= written, 10_000, 20);
        await waitUntil(
          'the sentinel to start a failover',
          async () => (await command(sentinel.port, 'SENTINEL', 'FAILOVER', 'tlsmaster').catch((e: Error) => e)) === 'OK',
          30_000,
          100,
        );
        const t = performance.now();
        await waitUntil(
          'the other node promoted',
          async () => ((await command(next.port, 'ROLE')) as string[])[0] === 'master',
          30_000,
          20,
        );
        const promotedAt = performance.now();
        // Wait with a key of its own per try: a try that starts on the old master may be the one that
        // the client sends again on the new one, and gina's bucket must see exactly one admission here.
        const onNew = () => (client as unknown as { stream?: { remotePort?: number } }).stream?.remotePort === tls.get(next.port);
        let probes = 0;
        await waitUntil(
          'a decision on the new master',
          async () => {
            const before = onNew();
            const status = (await request(app).get('/').set('x-user', `probe-${probes++}`)).status;
            return before && onNew() && status === 200;
          },
          30_000,
          20,
        );
        const status = (await request(app).get('/').set('x-user', 'gina')).status;
        console.log(
          `      iovalkey TLS sentinel: promoted ${Math.round(promotedAt - t)} ms after SENTINEL FAILOVER; deciding on the new master ${Math.round(performance.now() - promotedAt)} ms after the promotion (answered ${status})`,
        );
        // gina's bucket moved with the data: one admission before, one after, then a denial.
        assert.equal(status, 200);
        assert.equal((await request(app).get('/').set('x-user', 'gina')).status, 429);
      } finally {
        await limiter.close();
        client.disconnect();
      }
    });
  });
});
