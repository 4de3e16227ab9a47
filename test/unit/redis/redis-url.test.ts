import assert from 'node:assert/strict';
import { parseRedisUrl, RedisUrlError } from '../../../src';

// src/redis/redis-url.ts: what each REDIS_URL form parses to, and what is refused.
describe('parseRedisUrl', () => {
  it('standalone: host, port (default 6379), database, TLS, user and password (percent-decoded)', () => {
    assert.deepEqual(parseRedisUrl('redis://127.0.0.1'), {
      kind: 'standalone',
      host: '127.0.0.1',
      port: 6379,
      db: 0,
      tls: false,
      username: undefined,
      password: undefined,
    });
    assert.deepEqual(parseRedisUrl('rediss://limiter:p%40ss%3Aw@cache.internal:6380/3'), {
      kind: 'standalone',
      host: 'cache.internal',
      port: 6380,
      db: 3,
      tls: true,
      username: 'limiter',
      password: 'p@ss:w',
    });
    // A password alone (the default user), and a query string that is ignored.
    const t = parseRedisUrl('redis://:secret@h:7000?family=6');
    assert.equal(t.username, undefined);
    assert.equal(t.password, 'secret');
  });

  it('IPv6 literals in brackets, with and without a port', () => {
    const a = parseRedisUrl('redis://[::1]:6390');
    assert.equal(a.kind === 'standalone' && a.host, '::1');
    assert.equal(a.kind === 'standalone' && a.port, 6390);
    const b = parseRedisUrl('redis+cluster://[fd00::1],[fd00::2]:7001');
    assert.deepEqual(b.kind === 'cluster' && b.nodes, [
      { host: 'fd00::1', port: 6379 },
      { host: 'fd00::2', port: 7001 },
    ]);
  });

  it('Sentinel: several sentinels (default port 26379), the master name, an optional database', () => {
    assert.deepEqual(parseRedisUrl('redis+sentinel://limiter:pw@s1,s2:26380,s3/mymaster/2'), {
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
        { host: 's3', port: 26379 },
      ],
      masterName: 'mymaster',
      db: 2,
      tls: false,
      username: 'limiter',
      password: 'pw',
    });
  });

  it('TLS forms: rediss+sentinel:// (data nodes, and the sentinels unless told otherwise) and rediss+cluster://', () => {
    const sentinel = parseRedisUrl('rediss+sentinel://s1:26380/mymaster');
    assert.deepEqual([sentinel.kind, sentinel.kind === 'sentinel' && sentinel.tls], ['sentinel', true]);
    const cluster = parseRedisUrl('rediss+cluster://n1:7000,n2:7001');
    assert.deepEqual([cluster.kind, cluster.kind === 'cluster' && cluster.tls], ['cluster', true]);
    assert.equal((parseRedisUrl('redis+cluster://n1:7000') as { tls: boolean }).tls, false);
    assert.throws(() => parseRedisUrl('redis+tls://h'), /rediss\+sentinel:\/\/, redis\+cluster:\/\/ or rediss\+cluster:\/\//);
  });

  it('Cluster: seed nodes, database 0 only', () => {
    assert.deepEqual(parseRedisUrl('redis+cluster://n1:7000,n2:7001'), {
      kind: 'cluster',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 7001 },
      ],
      tls: false,
      username: undefined,
      password: undefined,
    });
  });

  const refused: ReadonlyArray<readonly [string, RegExp]> = [
    ['http://h:6379', /the scheme must be/],
    ['127.0.0.1:6379', /the scheme must be/],
    ['redis://', /no host given/],
    ['redis://h:0', /port 0 is out of range/],
    ['redis://h:65536', /port 65536 is out of range/],
    ['redis://h1,h2', /takes one host/],
    ['redis://h/abc', /database "abc"/],
    ['redis://h/100', /database "100"/],
    ['redis+sentinel://s1,s2', /ends with \/<masterName>/],
    ['redis+sentinel://s1/m/x', /database "x"/],
    ['redis+sentinel://s1/m/1/extra', /ends with \/<masterName>/],
    ['redis+cluster://n1/0', /has no path/],
    ['redis://h o:1', /is not host:port/],
    ['redis://u:hunter2@h:99999', /out of range/],
  ];
  for (const [url, pattern] of refused) {
    it(`refuses ${url.replace(/hunter2/, '***')} with a RedisUrlError that never shows the password`, () => {
      assert.throws(
        () => parseRedisUrl(url),
        (err: unknown) => {
          assert.ok(err instanceof RedisUrlError);
          assert.match(err.message, pattern);
          assert.ok(!err.message.includes('hunter2'));
          return true;
        },
      );
    });
  }
});
