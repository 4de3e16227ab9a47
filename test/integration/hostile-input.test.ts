// Hostile input against the sample API (real Postgres, real Redis): spoofed forwarding
// headers, oversized and malformed headers, missing and repeated Host, unknown expectations,
// request-smuggling shapes, pipelining, huge identities, unicode and control characters in every
// text field, malformed and deeply nested JSON, invalid tokens, path and method tricks on the
// probes. Every answer must be a documented status, errors in our JSON shape, never a 5xx or a
// stack trace, always with an X-Request-Id, and every Redis key written must stay inside the
// limiter's key shape.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import request from 'supertest';
import { clientErrorListener, createHealth, ERROR_STATUS, loadConfig, REQUEST_ID_PATTERN, type ErrorCode } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { createHttpServer } from '../../src/app/http-server';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting, type RateLimiting } from '../../src/app/rate-limiting';
import { waitUntil } from '../../scripts/wait';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { parseResponses, raw, rawExchange, type RawResponse } from '../support/raw-http';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_ENV } from '../support/deadline';

const KNOWN_CODES = new Set(Object.keys(ERROR_STATUS));

describe('hostile input (sample API on real Postgres and Redis)', function () {
  this.timeout(60_000);
  let schema: TestSchema;
  let db: Database;
  let redis: RedisProcess;
  let admin: Redis;
  const limitings: RateLimiting[] = [];
  const servers: Server[] = [];
  let direct: Server; // TRUST_PROXY=false
  let behindOne: Server; // TRUST_PROXY=1
  let token = '';
  const tally = { tried: 0, byStatus: {} as Record<string, number> };
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

  async function serve(trustProxy: string): Promise<Server> {
    const config = loadConfig({
      ...TEST_DEADLINE_ENV,
      RATE_LIMIT_BACKEND: 'redis',
      REDIS_URL: redis.url,
      RATE_LIMIT_DEFAULT_RPS: '0.001',
      RATE_LIMIT_DEFAULT_BURST: '100000',
      TRUST_PROXY: trustProxy,
      LOAD_SHED_ENABLED: 'false',
    });
    const logger = createLogger('silent');
    const limiting = createRateLimiting(config, logger);
    limitings.push(limiting);
    // No offline queue: decisions made before the connection is up fail (closed policies: 503).
    await waitUntil('the Redis client to be ready', async () => limiting.redis?.status === 'ready', 10_000, 20);
    const app = createApp({
      config,
      db,
      logger,
      health: createHealth({ checks: [] }),
      version: 'test',
      ...(limiting.limiter === undefined ? {} : { limiter: limiting.limiter }),
    });
    // The production wiring (main.ts): the same server options and listeners.
    const server = createHttpServer(app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    return server;
  }
  const portOf = (s: Server) => (s.address() as AddressInfo).port;
  // Logins are limited per address and per username: each raw login attempt below comes from an
  // address (behind the trusted proxy) and names a user of its own, so its answer is its own.
  let attempt = 0;
  const freshLogin = () => {
    attempt++;
    const body = JSON.stringify({ username: `nobody-${attempt}`, password: 'wrong password' });
    return { xff: `X-Forwarded-For: 100.64.${attempt >> 8}.${attempt & 255}\r\n`, body };
  };

  /**
   * Every answer: a documented status; an error is our JSON with a known code; no stack, no
   * HTML; an X-Request-Id.
   */
  function check(what: string, status: number, headers: Readonly<Record<string, unknown>>, body: string, allowed: readonly number[]): void {
    tally.tried++;
    tally.byStatus[String(status)] = (tally.byStatus[String(status)] ?? 0) + 1;
    const shown = `${what}: ${status} ${body.slice(0, 200)}`;
    assert.ok(allowed.includes(status), `unexpected status for ${shown}`);
    assert.ok(status < 500, shown);
    assert.ok(!/\n\s+at /.test(body) && !/<html/i.test(body), `a stack trace or HTML page: ${shown}`);
    const id = headers['x-request-id'];
    assert.ok(typeof id === 'string' && REQUEST_ID_PATTERN.test(id), `no X-Request-Id: ${shown}`);
    if (status >= 400) {
      assert.match(String(headers['content-type']), /^application\/json/, shown);
      const parsed = JSON.parse(body) as { error?: string; detail?: unknown };
      assert.ok(KNOWN_CODES.has(parsed.error ?? ''), shown);
      assert.equal(ERROR_STATUS[parsed.error as ErrorCode], status, shown);
      assert.equal(typeof parsed.detail, 'string', shown);
    }
  }
  async function expectAnswer(what: string, req: request.Test, allowed: readonly number[]): Promise<request.Response> {
    const res = await req;
    check(what, res.status, res.headers, res.text ?? '', allowed);
    return res;
  }
  async function expectRaw(what: string, port: number, bytes: string | Buffer, allowed: readonly number[]): Promise<RawResponse> {
    const res = await raw(port, bytes);
    check(what, res.status, res.headers, res.body, allowed);
    return res;
  }
  const remaining = (res: request.Response) => Number(/;r=(\d+)/.exec(String(res.headers['ratelimit']))?.[1]);

  before(async () => {
    schema = await createTestSchema('hostile');
    db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 4 });
    await migrate(db.write, db.schema);
    redis = await startRedisServer();
    admin = new Redis(redis.port, '127.0.0.1');
    direct = await serve('false');
    behindOne = await serve('1');
    const creds = { username: 'hostile-user', password: 'long enough pw' };
    await request(direct).post('/v1/auth/register').send(creds).expect(201);
    token = (await request(direct).post('/v1/auth/login').send(creds).expect(200)).body.token as string;
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    for (const l of limitings) await l.close();
    admin?.disconnect();
    await db?.close();
    await schema?.drop();
    await redis?.stop();
    process.stdout.write(`      hostile inputs tried: ${tally.tried}, answers by status: ${JSON.stringify(tally.byStatus)}\n`);
  });

  it("X-Forwarded-For is ignored with TRUST_PROXY=false: spoofed addresses share the socket's bucket", async () => {
    const first = await expectAnswer('xff off', request(direct).get('/v1/status').set('X-Forwarded-For', '198.51.100.1'), [200]);
    const spoofs = ['198.51.100.2', '10.0.0.1, 10.0.0.2', 'garbage', '::1', '1.1.1.1'.repeat(2000)];
    let last = remaining(first);
    for (const ip of spoofs) {
      const res = await expectAnswer(`xff off ${ip.slice(0, 20)}`, request(direct).get('/v1/status').set('X-Forwarded-For', ip), [200]);
      assert.equal(remaining(res), last - 1, `spoofed ${ip.slice(0, 30)} got a bucket of its own`);
      last = remaining(res);
    }
  });

  it('TRUST_PROXY=1 takes the address the trusted proxy saw: what the client prepends changes nothing', async () => {
    const a = await expectAnswer('hop 1', request(behindOne).get('/v1/status').set('X-Forwarded-For', '203.0.113.9'), [200]);
    const b = await expectAnswer(
      'hop 1 spoofed',
      request(behindOne).get('/v1/status').set('X-Forwarded-For', '6.6.6.6, 203.0.113.9'),
      [200],
    );
    const c = await expectAnswer(
      'hop 1 junk',
      request(behindOne)
        .get('/v1/status')
        .set('X-Forwarded-For', `${'x'.repeat(10_000)}, 203.0.113.9`),
      [200],
    );
    assert.equal(remaining(b), remaining(a) - 1);
    assert.equal(remaining(c), remaining(b) - 1);
    const other = await expectAnswer('hop 1 other', request(behindOne).get('/v1/status').set('X-Forwarded-For', '203.0.113.10'), [200]);
    assert.ok(remaining(other) > remaining(c), 'another client address has its own bucket');
    // A forwarded value that is not an address (10 KB of it, unicode, braces) is still one bounded key.
    for (const junk of ['not-an-ip', '{evil}', 'x'.repeat(10_000), 'ünïcødé', '::ffff:203.0.113.9', '2001:db8::1%eth0']) {
      await expectAnswer(`hop 1 value ${junk.slice(0, 20)}`, request(behindOne).get('/v1/status').set('X-Forwarded-For', junk), [200]);
    }
  });

  it('headers: over the limit get 431 JSON, malformed requests 400 JSON, control characters refused', async () => {
    const port = portOf(direct);
    await expectRaw('20 KB header', port, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, [431]);
    await expectRaw(
      'many headers',
      port,
      `GET /v1/status HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`,
      [200, 431],
    );
    await expectRaw('control char in header', port, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\x01\r\n\r\n`, [400]);
    await expectRaw('garbage request line', port, 'GARBAGE\r\n\r\n', [400]);
    await expectRaw(
      'bad chunked body',
      port,
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
      [400],
    );
    await expectRaw(
      '20 KB chunk extension',
      port,
      `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;${'e'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`,
      [413],
    );
    await expectRaw(
      'both lengths',
      port,
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      [400],
    );
    await expectRaw('NUL in path', port, 'GET /v1/status\x00 HTTP/1.1\r\nHost: x\r\n\r\n', [400]);
    await expectRaw('latin-1 token', port, `GET /v1/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xe9\r\n\r\n`, [401]);
  });

  it('a refused request is answered and its connection closed by the server, even if the client keeps its side open', async () => {
    // allowHalfOpen: the client never closes its side by itself, as a hostile one would not.
    const socket = connect({ port: portOf(direct), host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write(`GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const ended = await Promise.race([once(socket, 'end').then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]);
    assert.equal(ended, true, 'no answer');
    const [answer] = parseResponses(Buffer.concat(chunks).toString());
    check('20 KB header, client side left open', answer?.status ?? 0, answer?.headers ?? {}, answer?.body ?? '', [431]);
    const connections = () => new Promise<number>((resolve, reject) => direct.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    await waitUntil('the server to close the connection', async () => (await connections()) === 0, 2000, 20).catch(() => undefined);
    const left = await connections();
    socket.destroy();
    assert.equal(left, 0, 'the server kept a half-open connection');
  });

  /** Every answer on one connection, in order, each checked; the statuses seen. */
  async function expectPipeline(what: string, bytes: string, expected: readonly number[]): Promise<readonly RawResponse[]> {
    const ex = await rawExchange(portOf(direct), bytes);
    const statuses = ex.responses.map((r) => r.status);
    assert.deepEqual(statuses, expected, `${what}: ${JSON.stringify(ex.text.slice(0, 400))}`);
    ex.responses.forEach((r, i) => check(`${what} #${i + 1}`, r.status, r.headers, r.body, [expected[i] ?? 0]));
    assert.equal(ex.closedByServer, true, `${what}: the server closes the connection after the refusal`);
    return ex.responses;
  }

  // Was: "a malformed request only closes the connection (nothing written ahead of it)". The
  // first response was already safe; now the refusal follows it instead of a bare close.
  it('after a pipelined response, a malformed request gets our 400 after it, then the connection is closed', async () => {
    const ex = await rawExchange(portOf(direct), 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n');
    assert.deepEqual(
      ex.responses.map((r) => r.status),
      [200, 400],
      JSON.stringify(ex.text),
    );
    ex.responses.forEach((r, i) => check(`pipelined then garbage #${i + 1}`, r.status, r.headers, r.body, [[200, 400][i] ?? 0]));
    assert.equal(ex.responses[1]?.headers['connection'], 'close');
  });

  it('pipelining: what was parsed before a malformed request is answered first, in order, then our refusal', async () => {
    const slow = 'GET /v1/slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n';
    const status = 'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n';
    // The first response is still being worked on (200 ms) when the parser meets the bad bytes.
    const [first, refusal] = await expectPipeline(
      'in flight, then a control character in the path',
      `${slow}GET /\x01 HTTP/1.1\r\n\r\n`,
      [200, 400],
    );
    assert.deepEqual(JSON.parse(first?.body ?? ''), { slept_ms: 200 });
    assert.equal(JSON.parse(refusal?.body ?? '').error, 'BAD_REQUEST');
    assert.equal(refusal?.headers['connection'], 'close');
    const three = await expectPipeline('two in flight, then garbage', `${slow}${status}GARBAGE\r\n\r\n`, [200, 200, 400]);
    assert.equal(JSON.parse(three[0]?.body ?? '').slept_ms, 200);
    assert.equal(JSON.parse(three[1]?.body ?? '').status, 'ok');
    await expectPipeline(
      'in flight, then headers over the limit',
      `${slow}GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      [200, 431],
    );
    await expectPipeline(
      'in flight, then both Content-Length and Transfer-Encoding',
      `${slow}POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      [200, 400],
    );
    // The bad bytes are in the second request's own body: it is refused once the first is answered.
    await expectPipeline(
      'in flight, then a bad chunked body',
      `${slow}POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
      [200, 400],
    );
    // The first response closes the connection: nothing can follow it.
    await expectPipeline(
      'Connection: close in flight, then garbage',
      `GET /v1/slow?ms=200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGARBAGE\r\n\r\n`,
      [200],
    );
  });

  it('a client too slow with its headers gets 408 (empty body, X-Request-Id), after what was already answered', async () => {
    // Node's timeouts are server options: a server of its own, with the same listener.
    const server = createServer({ headersTimeout: 300, requestTimeout: 300, connectionsCheckingInterval: 50 }, (_req, res) => {
      setTimeout(() => res.end('done'), 100);
    });
    server.on('clientError', clientErrorListener());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const port = portOf(server);
      for (const [what, bytes, statuses] of [
        ['headers never finished', 'GET / HTTP/1.1\r\nHost: x\r\n', [408]],
        ['one answered, the next never finished', 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n', [200, 408]],
      ] as const) {
        const ex = await rawExchange(port, bytes);
        assert.deepEqual(
          ex.responses.map((r) => r.status),
          statuses,
          `${what}: ${JSON.stringify(ex.text)}`,
        );
        const timeout = ex.responses.at(-1);
        assert.match(timeout?.headers['x-request-id'] ?? '', REQUEST_ID_PATTERN, what);
        assert.deepEqual([timeout?.headers['connection'], timeout?.body], ['close', ''], what);
        assert.equal(ex.closedByServer, true, what);
      }
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('bodies: malformed, wrong type, oversized, deeply nested, injection-shaped JSON', async () => {
    // Malformed bodies are rate limited like any other (a login body without a username counts
    // per address on both login policies): one address per body, so each answer is its own.
    let client = 0;
    const login = () => request(behindOne).post('/v1/auth/login').set('X-Forwarded-For', `192.0.2.${++client}`);
    const bodies: ReadonlyArray<readonly [string, string, string, readonly number[]]> = [
      ['truncated', 'application/json', '{"username":', [400]],
      ['not JSON', 'application/json', 'username=a&password=b', [400]],
      ['NUL', 'application/json', '\u0000', [400]],
      ['array', 'application/json', '[]', [400]],
      ['null', 'application/json', 'null', [400]],
      ['string', 'application/json', '"x"', [400]],
      ['number', 'application/json', '1e400', [400]],
      ['operator object', 'application/json', '{"username":{"$gt":""},"password":"long enough pw"}', [400]],
      [
        'proto pollution',
        'application/json',
        '{"__proto__":{"admin":true},"username":"hostile-user","password":"long enough pw"}',
        [400, 200],
      ],
      [
        'constructor pollution',
        'application/json',
        '{"constructor":{"prototype":{"admin":true}},"username":"u1","password":"long enough pw"}',
        [400],
      ],
      ['duplicate keys', 'application/json', '{"username":"a","username":"hostile-user","password":"wrong password"}', [401]],
      ['deep arrays', 'application/json', `${'['.repeat(30_000)}${']'.repeat(30_000)}`, [400]],
      ['deep objects', 'application/json', `${'{"a":'.repeat(6_000)}1${'}'.repeat(6_000)}`, [400]],
      ['over 64 kB', 'application/json', JSON.stringify({ username: 'u', password: 'p'.repeat(70_000) }), [413]],
      ['form body', 'application/x-www-form-urlencoded', 'username=a&password=b', [415]],
      ['utf-16 charset', 'application/json; charset=utf-16', '{}', [400, 415]],
      ['latin-1 charset', 'application/json; charset=latin1', '{}', [415]],
      ['10 KB username', 'application/json', JSON.stringify({ username: 'u'.repeat(10_000), password: 'long enough pw' }), [400]],
      [
        'unicode username',
        'application/json',
        JSON.stringify({ username: 'ü𝄞\u202e{}\u0000\u001f', password: 'long enough pw' }),
        [400, 401],
      ],
      ['braces username', 'application/json', JSON.stringify({ username: '}{rl:public:{x}', password: 'long enough pw' }), [400, 401]],
    ];
    for (const [what, type, body, allowed] of bodies) {
      await expectAnswer(`login ${what}`, login().set('Content-Type', type).send(body), allowed);
    }
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeys);
    assert.equal(({} as Record<string, unknown>)['admin'], undefined, 'Object.prototype polluted');
    for (const [what, body] of [
      ['10 KB username', { username: 'r'.repeat(10_000), password: 'long enough pw' }],
      ['control characters', { username: 'ab\u0000c', password: 'long enough pw' }],
      ['unicode', { username: 'ü𝄞\u202e', password: 'long enough pw' }],
      ['extra field', { username: 'extra-field', password: 'long enough pw', admin: true }],
    ] as const) {
      await expectAnswer(`register ${what}`, request(direct).post('/v1/auth/register').send(body), [201, 400]);
    }
  });

  it('tokens: missing, malformed, unknown, 10 KB, wrong scheme: 401 with WWW-Authenticate', async () => {
    for (const header of [
      undefined,
      'Bearer',
      'Bearer ',
      'Bearer a b',
      'Basic dXNlcjpwYXNz',
      `Bearer ${'t'.repeat(10_000)}`,
      'Bearer ../../etc/passwd',
      `Bearer ${token}x`,
      'bearer\tx',
    ]) {
      const req = request(direct).get('/v1/notes');
      if (header !== undefined) req.set('Authorization', header);
      const res = await expectAnswer(`token ${String(header).slice(0, 20)}`, req, [401]);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
    }
    await expectAnswer('good token', request(direct).get('/v1/notes').set('Authorization', `Bearer ${token}`), [200]);
    for (const id of ["1' OR '1'='1", '../../etc/passwd', '%00', 'x'.repeat(5000), '-1', '1e309', '😀']) {
      await expectAnswer(
        `note id ${id.slice(0, 20)}`,
        request(direct)
          .get(`/v1/notes/${encodeURIComponent(id)}`)
          .set('Authorization', `Bearer ${token}`),
        [400, 404],
      );
    }
  });

  it('probe paths: queries, HEAD, trailing slash and case are the probe; other methods and path tricks are 404 JSON', async () => {
    const ok: ReadonlyArray<readonly [string, string]> = [
      ['GET', '/health/live?x'],
      ['GET', '/health/live?x=1&x=2'],
      ['GET', `/health/ready?${'q'.repeat(8000)}`],
      ['HEAD', '/health/live'],
      ['HEAD', '/health/ready'],
      ['GET', '/health/live/'],
      ['GET', '/HEALTH/LIVE'],
      ['GET', '/health/started'],
    ];
    for (const [method, path] of ok) {
      const res = await expectAnswer(`${method} ${path.slice(0, 30)}`, request(direct)[method === 'HEAD' ? 'head' : 'get'](path), [200]);
      if (method === 'HEAD') assert.equal(res.text ?? '', '', 'HEAD has no body');
    }
    const notFound: ReadonlyArray<readonly [string, string]> = [
      ['POST', '/health/live'],
      ['PUT', '/health/ready'],
      ['DELETE', '/health/started'],
      ['PATCH', '/health/live'],
      ['GET', '/health//live'],
      ['GET', '/health/%2e%2e/live'],
      ['GET', '/health/live%00'],
      ['GET', '/health/live%2F'],
      ['GET', '/health/../v1/status/../../health/live/x'],
      ['GET', '/%68ealth/live/extra'],
    ];
    for (const [method, path] of notFound) {
      const m = method.toLowerCase() as 'post' | 'put' | 'delete' | 'patch' | 'get';
      await expectAnswer(`${method} ${path}`, request(direct)[m](path), [404]);
    }
    await expectAnswer('bad percent-encoding', request(direct).get('/health/%E0%A4%A'), [400, 404]);
    await expectRaw('TRACE', portOf(direct), 'TRACE /health/live HTTP/1.1\r\nHost: x\r\n\r\n', [404]);
    await expectRaw('absolute-form target', portOf(direct), 'GET http://evil.example/health/live HTTP/1.1\r\nHost: x\r\n\r\n', [200, 404]);
    await expectRaw('asterisk target', portOf(direct), 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', [200, 404]);
  });

  it('Host: missing on HTTP/1.1, repeated, or not host[:port] is 400 JSON and the connection closed', async () => {
    const port = portOf(direct);
    const refused: ReadonlyArray<readonly [string, string]> = [
      ['no Host', 'GET /v1/status HTTP/1.1\r\n\r\n'],
      ['no Host, a probe', 'GET /health/live HTTP/1.1\r\n\r\n'],
      ['no Host, a body', 'POST /v1/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'],
      ['two Hosts', 'GET /v1/status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
      ['two equal Hosts', 'GET /v1/status HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n'],
      ['two Hosts, other case', 'GET /v1/status HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n'],
      ['two Hosts on HTTP/1.0', 'GET /v1/status HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n'],
      ['Host with a space', 'GET /v1/status HTTP/1.1\r\nHost: a b\r\n\r\n'],
      ['Host with a path', 'GET /v1/status HTTP/1.1\r\nHost: a/b\r\n\r\n'],
      ['Host with userinfo', 'GET /v1/status HTTP/1.1\r\nHost: user@a\r\n\r\n'],
      ['Host with latin-1', 'GET /v1/status HTTP/1.1\r\nHost: \xe9\xe9\r\n\r\n'],
      ['Host with a tab', 'GET /v1/status HTTP/1.1\r\nHost: a\tb\r\n\r\n'],
      ['Host with a bad port', 'GET /v1/status HTTP/1.1\r\nHost: a:80x\r\n\r\n'],
    ];
    for (const [what, bytes] of refused) {
      const ex = await rawExchange(port, bytes);
      const [res] = ex.responses;
      check(what, res?.status ?? 0, res?.headers ?? {}, res?.body ?? '', [400]);
      assert.equal(JSON.parse(res?.body ?? '').error, 'BAD_REQUEST', what);
      assert.equal(res?.headers['connection'], 'close', what);
      assert.equal(ex.closedByServer, true, `${what}: connection left open`);
    }
    const served: ReadonlyArray<readonly [string, string]> = [
      ['HTTP/1.0 without Host', 'GET /v1/status HTTP/1.0\r\n\r\n'],
      ['empty Host', 'GET /v1/status HTTP/1.1\r\nHost:\r\n\r\n'],
      ['Host with a port', 'GET /v1/status HTTP/1.1\r\nHost: api.example:8443\r\n\r\n'],
      ['IPv6 Host', 'GET /v1/status HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n'],
    ];
    for (const [what, bytes] of served) await expectRaw(what, port, bytes, [200]);
  });

  it('Expect: anything but 100-continue is 417 EXPECTATION_FAILED JSON; 100-continue is served', async () => {
    const port = portOf(behindOne);
    const login = (expect: string) => {
      const { xff, body } = freshLogin();
      return `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n${xff}Expect: ${expect}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    for (const expect of ['200-ok', 'foo', '100', '100-continue=1x', 'continue', '\xff', ',']) {
      for (const bytes of [`GET /v1/status HTTP/1.1\r\nHost: x\r\nExpect: ${expect}\r\n\r\n`, login(expect)]) {
        // A 417 closes the connection (waited for); a served request keeps it open.
        const ex = await rawExchange(port, bytes, { until: (rs) => rs.some((r) => r.status >= 200 && r.status !== 417 && r.complete) });
        const statuses = ex.responses.map((r) => r.status);
        if (statuses[0] === 100) {
          // Node reads "100-continue" anywhere in the value as the expectation it knows.
          check(`Expect ${expect}`, ex.responses[1]?.status ?? 0, ex.responses[1]?.headers ?? {}, ex.responses[1]?.body ?? '', [200, 401]);
          continue;
        }
        const [res] = ex.responses;
        check(`Expect ${expect}`, res?.status ?? 0, res?.headers ?? {}, res?.body ?? '', [417]);
        assert.equal(JSON.parse(res?.body ?? '').error, 'EXPECTATION_FAILED');
        assert.equal(ex.closedByServer, true, 'a 417 closes the connection');
      }
    }
    // The caller's well-formed request id is kept on the 417, as on any answer.
    const tagged = await raw(port, 'GET /v1/status HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nX-Request-Id: trace-417\r\n\r\n');
    assert.equal(tagged.headers['x-request-id'], 'trace-417');
    // Node answers 100 Continue itself, then the request is served as usual.
    for (const expect of ['100-continue', '100-Continue']) {
      const ex = await rawExchange(port, login(expect), { until: (rs) => rs.some((r) => r.status >= 200 && r.complete) });
      assert.deepEqual(
        ex.responses.map((r) => r.status),
        [100, 401],
        JSON.stringify(ex.text.slice(0, 300)),
      );
      check(`Expect ${expect}`, 401, ex.responses[1]?.headers ?? {}, ex.responses[1]?.body ?? '', [401]);
    }
    // HTTP/1.0 has no expectations: the header is ignored.
    await expectRaw('Expect on HTTP/1.0', port, 'GET /v1/status HTTP/1.0\r\nExpect: 200-ok\r\n\r\n', [200]);
  });

  it('request smuggling shapes: conflicting or malformed framing is refused with 400 JSON, nothing after it is answered', async () => {
    const port = portOf(direct);
    const head = 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
    // Each carries a second request the server must never answer.
    const smuggled = 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n';
    const shapes: ReadonlyArray<readonly [string, string]> = [
      ['Content-Length and Transfer-Encoding', `${head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
      ['Transfer-Encoding and Content-Length', `${head}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}`],
      ['Transfer-Encoding and Content-Length: 0', `${head}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n${smuggled}`],
      ['two Content-Lengths, different', `${head}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}${smuggled}`],
      ['two Content-Lengths, equal', `${head}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}${smuggled}`],
      ['Content-Length list', `${head}Content-Length: 2, 2\r\n\r\n{}${smuggled}`],
      ['negative Content-Length', `${head}Content-Length: -1\r\n\r\n${smuggled}`],
      ['signed Content-Length', `${head}Content-Length: +2\r\n\r\n{}${smuggled}`],
      ['hex Content-Length', `${head}Content-Length: 0x2\r\n\r\n{}${smuggled}`],
      ['Content-Length past 2^64', `${head}Content-Length: 99999999999999999999\r\n\r\n{}${smuggled}`],
      ['Transfer-Encoding not ending in chunked', `${head}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`],
      ['Transfer-Encoding gzip only', `${head}Transfer-Encoding: gzip\r\n\r\n{}${smuggled}`],
      ['Transfer-Encoding twice', `${head}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
      ['Transfer-Encoding: xchunked', `${head}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`],
      ['Transfer-Encoding folded', `${head}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${smuggled}`],
      ['space before the colon', `${head}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`],
      ['chunk size past 2^64', `${head}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n${smuggled}`],
      ['chunk size not hex', `${head}Transfer-Encoding: chunked\r\n\r\n-1\r\n${smuggled}`],
      ['chunk without its CRLF', `${head}Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n${smuggled}`],
      ['bare LF line ends', `GET /v1/status HTTP/1.1\nHost: x\n\n${smuggled}`],
      ['bare CR in a header', `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n${smuggled}`],
      ['header folded (obs-fold)', `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n${smuggled}`],
      ['NUL in a header', `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n${smuggled}`],
      ['HTTP/1.2', `GET /v1/status HTTP/1.2\r\nHost: x\r\n\r\n${smuggled}`],
      ['HTTP/2 preface', `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n${smuggled}`],
    ];
    for (const [what, bytes] of shapes) {
      const ex = await rawExchange(port, bytes);
      const [res] = ex.responses;
      check(what, res?.status ?? 0, res?.headers ?? {}, res?.body ?? '', [400]);
      assert.equal(ex.responses.length, 1, `${what}: the smuggled request was answered: ${JSON.stringify(ex.text.slice(0, 300))}`);
      assert.equal(ex.closedByServer, true, `${what}: connection left open`);
    }
    // Framing the RFC allows, including case and optional whitespace, is served.
    for (const [what, te] of [
      ['Chunked', 'Chunked'],
      ['a tab before chunked', '\tchunked'],
    ] as const) {
      const { xff, body } = freshLogin();
      const bytes = `${head}${xff}Transfer-Encoding:${te}\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
      await expectRaw(`Transfer-Encoding ${what}`, portOf(behindOne), bytes, [401]);
    }
    // No tunnels here: Node closes a CONNECT without an answer (no 'connect' listener).
    const connectTry = await rawExchange(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.deepEqual([connectTry.text, connectTry.closedByServer], ['', true]);
  });

  it('control characters and lone surrogates in every text field: 400 naming the field, never a 500', async () => {
    const auth = { Authorization: `Bearer ${token}` };
    const note = await expectAnswer(
      'a note to change',
      request(direct).post('/v1/notes').set(auth).send({ title: 'target', body: 'x' }),
      [201],
    );
    const id = note.body.id as string;
    const controls = [...Array.from({ length: 0x20 }, (_, c) => String.fromCharCode(c)), '\x7f', '\x80', '\x85', '\x9f'];
    const lineBreaks = new Set(['\t', '\n', '\r']);
    const name = (c: string) => `U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
    const refusedAs = async (what: string, req: request.Test, field: string) => {
      const res = await expectAnswer(what, req, [400]);
      assert.match(res.body.detail, new RegExp(`^${field.replace('.', '\\.')}: `), `${what}: ${res.body.detail}`);
    };
    for (const c of [...controls, '\ud800', '\udfff']) {
      const bad = `a${c}b`;
      for (const [verb, send] of [
        ['POST', () => request(direct).post('/v1/notes')],
        ['PUT', () => request(direct).put(`/v1/notes/${id}`)],
      ] as const) {
        await refusedAs(`${verb} title ${name(c)}`, send().set(auth).send({ title: bad, body: 'x' }), 'body.title');
        if (lineBreaks.has(c)) await expectAnswer(`${verb} body ${name(c)}`, send().set(auth).send({ title: 't', body: bad }), [200, 201]);
        else await refusedAs(`${verb} body ${name(c)}`, send().set(auth).send({ title: 't', body: bad }), 'body.body');
      }
      await refusedAs(
        `register username ${name(c)}`,
        request(direct)
          .post('/v1/auth/register')
          .send({ username: `ab${c}cd`, password: 'long enough pw' }),
        'body.username',
      );
      await refusedAs(
        `login username ${name(c)}`,
        request(behindOne)
          .post('/v1/auth/login')
          .set('X-Forwarded-For', `198.51.101.${c.charCodeAt(0) % 256}`)
          .send({ username: `ab${c}cd`, password: 'long enough pw' }),
        'body.username',
      );
    }
    // Emoji (a surrogate pair), right-to-left marks, U+2028: ordinary text.
    await expectAnswer(
      'unicode title',
      request(direct).post('/v1/notes').set(auth).send({ title: '😀 \u202e ü \u2028', body: '𝄞' }),
      [201],
    );
    // Passwords: any character (only a hash is stored), but not text UTF-8 cannot carry.
    const pw = 'long enough\u0000\u0001\u007f\u0085';
    await expectAnswer(
      'register password with controls',
      request(direct).post('/v1/auth/register').send({ username: 'ctl-pass', password: pw }),
      [201],
    );
    await expectAnswer(
      'login password with controls',
      request(direct).post('/v1/auth/login').send({ username: 'ctl-pass', password: pw }),
      [200],
    );
    await refusedAs(
      'register password lone surrogate',
      request(direct).post('/v1/auth/register').send({ username: 'surrogate-pass', password: 'long enough\ud800' }),
      'body.password',
    );
    await refusedAs(
      'login password lone surrogate',
      request(direct).post('/v1/auth/login').send({ username: 'ctl-pass', password: 'long enough\udc00' }),
      'body.password',
    );
    // An unknown key is named only when it is plain.
    const keyed = await expectAnswer(
      'NUL in a key',
      request(direct)
        .post('/v1/notes')
        .set(auth)
        .send({ title: 't', body: 'b', [`k\u0000${'k'.repeat(5000)}`]: 1 }),
      [400],
    );
    assert.equal(keyed.body.detail, 'body: Unrecognized key');
    // Query values and note ids.
    for (const [path, field] of [
      ['/v1/notes?limit=1%00', 'query.limit'],
      ['/v1/notes?offset=%01', 'query.offset'],
      ['/v1/notes?limit=%0A5', 'query.limit'],
      ['/v1/notes?limit=1&limit=2', 'query.limit'],
    ] as const) {
      await refusedAs(`query ${path}`, request(direct).get(path).set(auth), field);
    }
    await refusedAs('query ms NUL', request(direct).get('/v1/slow?ms=%00'), 'query.ms');
    for (const raw of ['%00', `${id}%00`, '%7F', `${id}%0A`]) {
      await expectAnswer(`note id ${raw}`, request(direct).get(`/v1/notes/${raw}`).set(auth), [404]);
      await expectAnswer(`PUT note id ${raw}`, request(direct).put(`/v1/notes/${raw}`).set(auth).send({ title: 't', body: 'b' }), [404]);
    }
    // Headers that become identities or log fields: tab and latin-1 bytes pass Node's parser.
    const port = portOf(behindOne);
    const post = (headers: string) => {
      const { xff, body } = freshLogin();
      return `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n${headers.includes('X-Forwarded-For') ? '' : xff}${headers}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    await expectRaw('API key with a tab', port, post('X-Api-Key: a\tb\r\n'), [401]);
    await expectRaw('API key in latin-1', port, post('X-Api-Key: \xff\xfe\x80\r\n'), [401]);
    await expectRaw('forwarded address with a tab', port, post('X-Forwarded-For: 198.51.100.80\t\r\n'), [401]);
    await expectRaw('forwarded address in latin-1', port, post('X-Forwarded-For: \xe9\xe9, 198.51.100.81\r\n'), [401]);
    for (const given of ['a\tb', '\xe9t\xe9', 'x'.repeat(129)]) {
      const res = await expectRaw(
        `request id ${JSON.stringify(given.slice(0, 10))}`,
        port,
        `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${given}\r\n\r\n`,
        [200],
      );
      assert.notEqual(res.headers['x-request-id'], given, 'a malformed request id is replaced');
    }
    await expectRaw(
      'bearer with a tab',
      portOf(direct),
      `GET /v1/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\t${token}\u0001\r\n\r\n`,
      [400, 401],
    );
    await expectRaw(
      'bearer with latin-1',
      portOf(direct),
      `GET /v1/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\xe9\r\n\r\n`,
      [401],
    );
  });

  it('a 404 names at most the first 128 characters of the path', async () => {
    const long = `/${'a'.repeat(16_000)}`;
    const res = await expectAnswer('16 kB path', request(direct).get(long), [404]);
    assert.equal(res.body.detail, `No route for GET /${'a'.repeat(127)}…`);
    assert.ok(res.text.length < 300, `${res.text.length} bytes back for a 16 kB path`);
    const exact = `/${'b'.repeat(127)}`;
    assert.equal((await expectAnswer('128-character path', request(direct).get(exact), [404])).body.detail, `No route for GET ${exact}`);
    const rawLong = await expectRaw('16 kB path, raw', portOf(direct), `DELETE /${'%41'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`, [404]);
    assert.equal(JSON.parse(rawLong.body).detail, `No route for DELETE /${'%41'.repeat(42)}%…`);
  });

  it("every Redis key written stays inside the limiter's shape: prefix, policy, one bounded {identity}", async () => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    assert.ok(keys.length >= 5, `only ${keys.length} keys`);
    const shape = /^rl:[a-z][a-z0-9_.-]{0,63}(@[A-Za-z0-9_.-]+)?:\{[a-z]:[A-Za-z0-9._:@/#-]{1,64}(\/\d+)?\}$/;
    for (const k of keys) {
      assert.match(k, shape);
      assert.ok(k.length <= 120, `key of ${k.length} characters`);
    }
    process.stdout.write(`      ${keys.length} keys, longest ${Math.max(...keys.map((k) => k.length))} characters\n`);
  });
});
