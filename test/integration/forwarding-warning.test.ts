import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { Writable } from 'node:stream';
import { createMemoryStore, createMetrics, createRateLimiter, loadConfig, type RateLimiterWarning } from '../../src';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting } from '../../src/app/rate-limiting';
import { limitedApp } from '../support/limiter-app';
import { raw } from '../support/raw-http';

/** The forwarding problems counted on /metrics, by problem. */
async function counted(metrics: ReturnType<typeof createMetrics>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.rateLimit.forwardingProblems.get()).values) out[String(v.labels['problem'])] = v.value;
  return out;
}

describe('guardrails: forwarding headers that trust proxy did not read are counted and said once', () => {
  function setup(trustProxy: boolean | string | number | undefined) {
    const warnings: RateLimiterWarning[] = [];
    const metrics = createMetrics({ processMetrics: false });
    const limiter = createRateLimiter({
      store: createMemoryStore(),
      prefix: `fw${randomBytes(3).toString('hex')}`,
      observer: metrics.rateLimit,
      onWarning: (w) => warnings.push(w),
      policies: { api: { algorithm: 'token_bucket', rps: 1, burst: 2, key: 'ip' } },
    });
    const app = limitedApp(limiter.limit('api'));
    if (trustProxy !== undefined) app.set('trust proxy', trustProxy);
    return { app, warnings, metrics, limiter };
  }

  it("TRUST_PROXY off: X-Forwarded-For from any client is one warning and a count per request; the clients share the peer's bucket", async () => {
    const { app, warnings, metrics, limiter } = setup(undefined);
    const answers = [];
    for (const client of ['203.0.113.1', '203.0.113.2', '203.0.113.3'])
      answers.push((await request(app).get('/').set('X-Forwarded-For', client)).status);
    assert.deepEqual(answers, [200, 200, 429], "one bucket: the peer's");
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.code, 'RAMPART_FORWARDED_TRUST_PROXY_OFF');
    assert.match(
      warnings[0]?.message ?? '',
      /"trust proxy" is off: every client behind that proxy shares the proxy's bucket\. Fix: set "trust proxy"/,
    );
    assert.deepEqual(await counted(metrics), { trust_proxy_off: 3, untrusted_peer: 0, forwarded_ignored: 0 });
    await limiter.close();
  });

  it('trust proxy on for other addresses: the header from an untrusted peer is untrusted_peer, named with the peer', async () => {
    const { app, warnings, metrics, limiter } = setup('10.0.0.0/8');
    await request(app).get('/').set('Forwarded', 'for=198.51.100.7');
    await request(app).get('/').set('X-Forwarded-For', '198.51.100.7');
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['RAMPART_FORWARDED_UNTRUSTED_PEER'],
    );
    assert.match(warnings[0]?.message ?? '', /arrived from (::ffff:)?127\.0\.0\.1, which "trust proxy" \(TRUST_PROXY\) does not trust/);
    assert.deepEqual(await counted(metrics), { trust_proxy_off: 0, untrusted_peer: 2, forwarded_ignored: 0 });
    await limiter.close();
  });

  it('a trusted proxy: X-Forwarded-For is read (no warning, a bucket per client); Forwarded alone is forwarded_ignored', async () => {
    const { app, warnings, metrics, limiter } = setup('loopback');
    const answers = [];
    for (const client of ['203.0.113.1', '203.0.113.2', '203.0.113.3'])
      answers.push((await request(app).get('/').set('X-Forwarded-For', client)).status);
    assert.deepEqual(answers, [200, 200, 200]);
    assert.equal(warnings.length, 0, 'a trusted proxy is read without a word');
    await request(app).get('/').set('Forwarded', 'for=203.0.113.9');
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['RAMPART_FORWARDED_FORWARDED_IGNORED'],
    );
    assert.deepEqual(await counted(metrics), { trust_proxy_off: 0, untrusted_peer: 0, forwarded_ignored: 1 });
    await limiter.close();
  });

  it('as an attacker sends it on a raw socket (any letter case, repeated, empty): counted; without the headers nothing is', async () => {
    const { app, warnings, metrics, limiter } = setup(false);
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const port = (server.address() as { port: number }).port;
      const heads = [
        'X-FORWARDED-FOR: 1.2.3.4',
        'x-forwarded-for: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8',
        'Forwarded: for=1.2.3.4',
        'x-Forwarded-For:',
        'X-Real-IP: 1.2.3.4',
      ];
      for (const head of heads) await raw(port, `GET / HTTP/1.1\r\nHost: x\r\n${head}\r\nConnection: close\r\n\r\n`);
      assert.deepEqual(
        await counted(metrics),
        { trust_proxy_off: 4, untrusted_peer: 0, forwarded_ignored: 0 },
        'X-Real-IP is no forwarding header Express reads',
      );
      assert.equal(warnings.length, 1);
    } finally {
      server.close();
      await limiter.close();
    }
  });

  it('the sample API (TRUST_PROXY unset): one warn log line with the code and the fix, every request counted', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const metrics = createMetrics({ processMetrics: false });
    const limiting = createRateLimiting(loadConfig({ RATE_LIMIT_BACKEND: 'memory' }), createLogger('info', sink), metrics);
    try {
      const app = limitedApp(limiting.limiter.limit('public'));
      for (let i = 0; i < 3; i++) await request(app).get('/').set('X-Forwarded-For', `198.51.100.${i}`);
      await new Promise((r) => setImmediate(r));
      const warned = lines.filter((l) => l['code'] === 'RAMPART_FORWARDED_TRUST_PROXY_OFF');
      assert.equal(warned.length, 1);
      assert.equal(warned[0]?.['level'], 40);
      assert.match(String(warned[0]?.['msg']), /TRUST_PROXY/);
      assert.equal((await counted(metrics))['trust_proxy_off'], 3);
    } finally {
      await limiting.close();
    }
  });
});
