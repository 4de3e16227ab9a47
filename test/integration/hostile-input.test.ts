// Hostile input against the sample API (real Postgres, real Redis): spoofed forwarding
// headers, oversized and malformed headers, huge identities, unicode and control characters,
// malformed and deeply nested JSON, invalid tokens, path and method tricks on the probes. Every
// answer must be a documented status, errors in our JSON shape, never a 5xx or a stack trace,
// and every Redis key written must stay inside the limiter's key shape.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import request from 'supertest';
import { clientErrorListener, createHealth, ERROR_STATUS, loadConfig, type ErrorCode } from '../../src';
import { createApp } from '../../src/app/create-app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting, type RateLimiting } from '../../src/app/rate-limiting';
import { waitUntil } from '../../scripts/redis-stack';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startRedisServer, type RedisProcess } from '../support/redis-server';

interface Raw {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Sends bytes as they are (no client-side checks) and reads the whole answer. */
async function raw(port: number, bytes: string | Buffer): Promise<Raw> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  socket.end(bytes);
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 5000))]);
  socket.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n') };
}

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
    const app = createApp({ config, db, logger, health: createHealth({ checks: [] }), version: 'test', ...(limiting.limiter === undefined ? {} : { limiter: limiting.limiter }) });
    const server = createServer(app);
    server.on('clientError', clientErrorListener());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    return server;
  }
  const portOf = (s: Server) => (s.address() as AddressInfo).port;

  /** Every answer: a documented status; an error is our JSON with a known code; no stack, no HTML. */
  function check(what: string, status: number, contentType: string | undefined, body: string, allowed: readonly number[]): void {
    tally.tried++;
    tally.byStatus[String(status)] = (tally.byStatus[String(status)] ?? 0) + 1;
    const shown = `${what}: ${status} ${body.slice(0, 200)}`;
    assert.ok(allowed.includes(status), `unexpected status for ${shown}`);
    assert.ok(status < 500, shown);
    assert.ok(!/\n\s+at /.test(body) && !/<html/i.test(body), `a stack trace or HTML page: ${shown}`);
    if (status >= 400) {
      assert.match(contentType ?? '', /^application\/json/, shown);
      const parsed = JSON.parse(body) as { error?: string; detail?: unknown };
      assert.ok(KNOWN_CODES.has(parsed.error ?? ''), shown);
      assert.equal(ERROR_STATUS[parsed.error as ErrorCode], status, shown);
      assert.equal(typeof parsed.detail, 'string', shown);
    }
  }
  async function expectAnswer(what: string, req: request.Test, allowed: readonly number[]): Promise<request.Response> {
    const res = await req;
    check(what, res.status, res.headers['content-type'], res.text ?? '', allowed);
    return res;
  }
  async function expectRaw(what: string, port: number, bytes: string | Buffer, allowed: readonly number[]): Promise<Raw> {
    const res = await raw(port, bytes);
    check(what, res.status, res.headers['content-type'], res.body, allowed);
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

  it('X-Forwarded-For is ignored with TRUST_PROXY=false: spoofed addresses share the socket\'s bucket', async () => {
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
    const b = await expectAnswer('hop 1 spoofed', request(behindOne).get('/v1/status').set('X-Forwarded-For', '6.6.6.6, 203.0.113.9'), [200]);
    const c = await expectAnswer('hop 1 junk', request(behindOne).get('/v1/status').set('X-Forwarded-For', `${'x'.repeat(10_000)}, 203.0.113.9`), [200]);
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
    await expectRaw('many headers', port, `GET /v1/status HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`, [200, 431]);
    await expectRaw('control char in header', port, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\x01\r\n\r\n`, [400]);
    await expectRaw('garbage request line', port, 'GARBAGE\r\n\r\n', [400]);
    await expectRaw('bad chunked body', port, 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', [400]);
    await expectRaw('20 KB chunk extension', port, `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;${'e'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`, [413]);
        await expectRaw('both lengths', port, 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', [400]);
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
    const text = Buffer.concat(chunks).toString();
    check('20 KB header, client side left open', Number(text.split(' ')[1]), 'application/json', text.slice(text.indexOf('\r\n\r\n') + 4), [431]);
    const connections = () => new Promise<number>((resolve, reject) => direct.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    await waitUntil('the server to close the connection', async () => (await connections()) === 0, 2000, 20).catch(() => undefined);
    const left = await connections();
    socket.destroy();
    assert.equal(left, 0, 'the server kept a half-open connection');
  });

  it('after a pipelined response, a malformed request only closes the connection (nothing written ahead of it)', async () => {
    const res = await raw(portOf(direct), 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n');
    check('pipelined then garbage', res.status, res.headers['content-type'], '', [200]);
    assert.ok(!res.body.includes('BAD_REQUEST'), 'no error written after the first response');
  });

  it('bodies: malformed, wrong type, oversized, deeply nested, injection-shaped JSON', async () => {
    const login = () => request(direct).post('/v1/auth/login');
    const bodies: ReadonlyArray<readonly [string, string, string, readonly number[]]> = [
      ['truncated', 'application/json', '{"username":', [400]],
      ['not JSON', 'application/json', 'username=a&password=b', [400]],
      ['NUL', 'application/json', '\u0000', [400]],
      ['array', 'application/json', '[]', [400]],
      ['null', 'application/json', 'null', [400]],
      ['string', 'application/json', '"x"', [400]],
      ['number', 'application/json', '1e400', [400]],
      ['operator object', 'application/json', '{"username":{"$gt":""},"password":"long enough pw"}', [400]],
      ['proto pollution', 'application/json', '{"__proto__":{"admin":true},"username":"hostile-user","password":"long enough pw"}', [400, 200]],
      ['constructor pollution', 'application/json', '{"constructor":{"prototype":{"admin":true}},"username":"u1","password":"long enough pw"}', [400]],
      ['duplicate keys', 'application/json', '{"username":"a","username":"hostile-user","password":"wrong password"}', [401]],
      ['deep arrays', 'application/json', `${'['.repeat(30_000)}${']'.repeat(30_000)}`, [400]],
      ['deep objects', 'application/json', `${'{"a":'.repeat(6_000)}1${'}'.repeat(6_000)}`, [400]],
      ['over 64 kB', 'application/json', JSON.stringify({ username: 'u', password: 'p'.repeat(70_000) }), [413]],
      ['form body', 'application/x-www-form-urlencoded', 'username=a&password=b', [415]],
      ['utf-16 charset', 'application/json; charset=utf-16', '{}', [400, 415]],
      ['latin-1 charset', 'application/json; charset=latin1', '{}', [415]],
      ['10 KB username', 'application/json', JSON.stringify({ username: 'u'.repeat(10_000), password: 'long enough pw' }), [400]],
      ['unicode username', 'application/json', JSON.stringify({ username: 'ü𝄞\u202e{}\u0000\u001f', password: 'long enough pw' }), [400, 401]],
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
    for (const header of [undefined, 'Bearer', 'Bearer ', 'Bearer a b', 'Basic dXNlcjpwYXNz', `Bearer ${'t'.repeat(10_000)}`, 'Bearer ../../etc/passwd', `Bearer ${token}x`, 'bearer\tx']) {
      const req = request(direct).get('/v1/notes');
      if (header !== undefined) req.set('Authorization', header);
      const res = await expectAnswer(`token ${String(header).slice(0, 20)}`, req, [401]);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
    }
    await expectAnswer('good token', request(direct).get('/v1/notes').set('Authorization', `Bearer ${token}`), [200]);
    for (const id of ["1' OR '1'='1", '../../etc/passwd', '%00', 'x'.repeat(5000), '-1', '1e309', '😀']) {
      await expectAnswer(`note id ${id.slice(0, 20)}`, request(direct).get(`/v1/notes/${encodeURIComponent(id)}`).set('Authorization', `Bearer ${token}`), [400, 404]);
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

  it('every Redis key written stays inside the limiter\'s shape: prefix, policy, one bounded {identity}', async () => {
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
