import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../src';
import { TEST_REDIS, TEST_REDIS_URL } from '../support/redis-server';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

const waitFor = async (what: string, cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 800; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
};

describe(`createRedisClient: a silent connection is replaced (socketTimeoutMs; real Redis ${TEST_REDIS_URL} behind a proxy)`, function () {
  this.timeout(60_000);
  const proxies: TcpProxy[] = [];
  const clients: Redis[] = [];
  /** A client of its own proxy, ready. */
  const client = async (socketTimeoutMs: number): Promise<{ c: Redis; proxy: TcpProxy }> => {
    const proxy = await startTcpProxy(TEST_REDIS.port, TEST_REDIS.host);
    proxies.push(proxy);
    const c = createRedisClient(`redis://127.0.0.1:${proxy.port}`, { socketTimeoutMs, onError: () => undefined }) as Redis;
    clients.push(c);
    await waitFor('the client to be ready', () => c.status === 'ready');
    return { c, proxy };
  };

  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    for (const p of proxies.splice(0)) await p.close();
  });

  it('a connection that stops answering while a command waits is replaced by a new one (with 0 it is kept), and the command completes once the network is back', async () => {
    const replacing = await client(300);
    const keeping = await client(0);
    const before = { replacing: replacing.proxy.accepted, keeping: keeping.proxy.accepted };

    // A partition: no FIN, no RST, nothing comes back.
    replacing.proxy.setMode('blackhole');
    keeping.proxy.setMode('blackhole');
    const answers: Record<string, unknown> = {};
    void replacing.c.ping().then((v) => (answers['replacing'] = v));
    void keeping.c.ping().then((v) => (answers['keeping'] = v));
    // The silent connection is given up and another opened, twice over, while the partition lasts.
    await waitFor('two new connections', () => replacing.proxy.accepted >= before.replacing + 2);
    assert.equal(keeping.proxy.accepted, before.keeping, 'without a socket timeout the client stays on its silent connection');
    assert.deepEqual(answers, {});

    replacing.proxy.setMode('forward');
    keeping.proxy.setMode('forward');
    await waitFor('both commands', () => Object.keys(answers).length === 2);
    assert.deepEqual(answers, { replacing: 'PONG', keeping: 'PONG' });
    assert.equal(await replacing.c.ping(), 'PONG');
    assert.ok(replacing.proxy.open <= 1, `one connection left open (${replacing.proxy.open})`);
  });

  it('a connection that is only idle is never closed for it', async () => {
    const { c, proxy } = await client(200);
    const accepted = proxy.accepted;
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(await c.ping(), 'PONG');
    assert.equal(proxy.accepted, accepted, 'no new connection: nothing was waiting while it was quiet');
  });
});
