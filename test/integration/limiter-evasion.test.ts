// The limiter walked around as an attacker would, with generated requests (fast-check; a failure
// prints the seed and the smallest request that broke the promise; FC_SEED=<n> replays one):
// every spelling of a path the router serves, every method, identity headers the caller picks,
// usernames respelled. The promise: a request that reaches a handler was decided by that
// handler's policies, and work that costs the app (a token's lookup, a password's check) is paid
// for before it is done. Run against the sample API on a real Postgres, on the memory store and
// on a real Redis.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Express, Request, Response, NextFunction } from 'express';
import fc from 'fast-check';
import request from 'supertest';
import { createHealth, createMetrics, loadConfig, type Check, type SurfaceOptions } from '../../src';
import { createApp, DEFAULT_SURFACES } from '../../src/app/app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting, type RateLimiting } from '../../src/app/rate-limiting';
import { waitUntil } from '../../scripts/wait';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { routerStackOf } from '../support/express-major';
import { raw } from '../support/raw-http';
import { readmeExample } from '../support/readme-example';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_ENV } from '../support/deadline';

const seed = process.env['FC_SEED'] === undefined ? {} : { seed: Number(process.env['FC_SEED']) };

/** What one request did, in order: policies charged (admitted decisions), token lookups, handlers run. */
type Event =
  | { readonly kind: 'charged'; readonly policy: string; readonly key: string }
  | { readonly kind: 'lookup' }
  | { readonly kind: 'handler'; readonly route: string };

/** Policy names in a key `<prefix>:<policy>[@surface]:{<identity>}`. */
const policyOfKey = (key: string) => /^[^:]+:([^:@]+)/.exec(key)?.[1] ?? '?';

/**
 * The policies the table promises for a route, found by a plain reading of the table (exact
 * path, then prefixes, then the catch-all) on the route's own spelling: what the router
 * normalises must land here.
 */
function promised(surfaces: readonly SurfaceOptions[], method: string, routePath: string): string[] {
  const m = method === 'HEAD' ? 'GET' : method;
  const fits = (s: SurfaceOptions) => s.method === undefined || s.method === '*' || s.method.toUpperCase() === m;
  const exact = surfaces.find((s) => !s.path.endsWith('*') && s.path === routePath && fits(s));
  const prefix = surfaces.find((s) => s.path.endsWith('*') && routePath.startsWith(s.path.slice(0, -1)) && fits(s));
  return [...(exact ?? prefix ?? { policies: [] }).policies];
}

/** Records every route handler's run (the route as declared, and the method it serves). */
function instrument(app: Express, record: (e: Event) => void): void {
  interface Layer {
    handle: ((req: Request, res: Response, next: NextFunction) => unknown) & { stack?: Layer[] };
    method?: string;
    route?: { path: string; stack: Layer[] };
  }
  const visit = (stack: Layer[], base: string) => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        for (const l of layer.route.stack) {
          const h = l.handle;
          const route = `${(l.method ?? '*').toUpperCase()} ${base}${layer.route.path}`;
          l.handle = function (this: unknown, req, res, next) {
            record({ kind: 'handler', route });
            return h.call(this, req, res, next);
          } as Layer['handle'];
        }
      } else if (Array.isArray(layer.handle.stack)) visit(layer.handle.stack, base);
    }
  };
  visit((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
}

/** A path the router may also serve for `path`: letter case, trailing slash, encodings, dot segments, parameters. */
function spellings(path: string): fc.Arbitrary<string> {
  const letters = fc.array(fc.boolean(), { minLength: path.length, maxLength: path.length });
  return fc
    .record({
      flips: letters,
      trailing: fc.oneof({ arbitrary: fc.constantFrom('', '/'), weight: 8 }, { arbitrary: fc.constant('//'), weight: 1 }),
      encode: fc.oneof(
        { arbitrary: fc.constant([]), weight: 6 },
        { arbitrary: fc.array(fc.nat({ max: path.length - 1 }), { maxLength: 2 }), weight: 1 },
      ),
      lowerHex: fc.boolean(),
      extra: fc.oneof(
        { arbitrary: fc.constant(''), weight: 8 },
        { arbitrary: fc.constantFrom(';x=1', '/.', '/..', '/./', '%2F', '%20', '?a=1', '?', '#f', '/%2e', '/x/..'), weight: 2 },
      ),
      doubleSlash: fc.oneof({ arbitrary: fc.constant(false), weight: 8 }, { arbitrary: fc.constant(true), weight: 1 }),
      absolute: fc.oneof(
        { arbitrary: fc.constant(''), weight: 3 },
        { arbitrary: fc.constantFrom('http://example.test', 'HTTP://EXAMPLE.TEST:80', 'https://a'), weight: 1 },
      ),
    })
    .map(({ flips, trailing, encode, lowerHex, extra, doubleSlash, absolute }) => {
      let chars = [...path].map((c, i) => (flips[i] === true ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c));
      for (const i of encode) {
        const c = chars[i] as string;
        if (c === '/' || c.length !== 1) continue;
        const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
        chars[i] = `%${lowerHex ? hex : hex.toUpperCase()}`;
      }
      if (doubleSlash) chars = ['/', ...chars];
      return `${absolute}${chars.join('')}${trailing}${extra}`;
    });
}

function evasionSuite(backend: 'memory' | 'redis'): void {
  describe(`the limiter walked around (${backend} store)`, function () {
    this.timeout(180_000);
    let schema: TestSchema;
    let db: Database;
    let redis: RedisProcess | undefined;
    let limiting: RateLimiting;
    let app: Express;
    let server: Server;
    let port: number;
    let events: Event[] = [];
    let token = '';
    const record = (e: Event) => events.push(e);

    before(async () => {
      schema = await createTestSchema('evasion');
      db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 4 });
      await migrate(db.write, db.schema);
      // Every lookup of a bearer token is seen.
      const query = db.write.query.bind(db.write) as (...args: unknown[]) => unknown;
      (db.write as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].includes('FROM sessions')) record({ kind: 'lookup' });
        return query(...args);
      };
      if (backend === 'redis') redis = await startRedisServer();
      // Numbers no generated run exhausts: every request that a policy admits reaches its handler.
      const dir = mkdtempSync(join(tmpdir(), 'rampart-evasion-'));
      const file = join(dir, 'policies.json');
      writeFileSync(
        file,
        JSON.stringify({
          policies: {
            login_ip: { algorithm: 'sliding_window', limit: 100_000, windowSeconds: 60, key: 'ip' },
            login_credential: { algorithm: 'sliding_window', limit: 100_000, windowSeconds: 60, key: 'credential' },
          },
        }),
      );
      const config = loadConfig({
        ...TEST_DEADLINE_ENV,
        RATE_LIMIT_BACKEND: backend,
        ...(redis === undefined ? {} : { REDIS_URL: redis.url }),
        RATE_LIMIT_DEFAULT_RPS: '100000',
        RATE_LIMIT_DEFAULT_BURST: '1000000',
        RATE_LIMIT_POLICIES_FILE: file,
      });
      limiting = createRateLimiting(config, createLogger('silent'), createMetrics({ processMetrics: false }));
      const store = limiting.store as { decide: (checks: readonly Check[], options?: unknown) => Promise<{ allowed: boolean }> };
      const decide = store.decide.bind(store);
      store.decide = async (checks, options) => {
        const decision = await decide(checks, options);
        if (decision.allowed) for (const c of checks) record({ kind: 'charged', policy: policyOfKey(c.key), key: c.key });
        return decision;
      };
      app = createApp({
        config,
        db,
        logger: createLogger('silent'),
        health: createHealth({ checks: [] }),
        version: 'test',
        limiter: limiting.limiter,
      });
      instrument(app, record);
      if (backend === 'redis') await waitUntil('the Redis client to be ready', async () => limiting.redis?.status === 'ready', 10_000, 20);
      const account = { username: 'walker', password: 'correct horse battery' };
      await request(app).post('/v1/auth/register').send(account).expect(201);
      token = (await request(app).post('/v1/auth/login').send(account).expect(200)).body.token as string;
      server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      server?.close();
      await limiting?.close();
      await db?.close();
      await schema?.drop();
      await redis?.stop();
    });

    async function send(
      method: string,
      target: string,
      headers: readonly string[],
      body?: string,
    ): Promise<{ status: number; events: Event[] }> {
      events = [];
      const lines = [`${method} ${target} HTTP/1.1`, 'Host: example.test', 'Connection: close', ...headers];
      if (body !== undefined) lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
      const res = await raw(port, `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
      return { status: res.status, events };
    }

    /** Every handler that ran was preceded by its promised policies; every lookup by `auth_ip`. */
    function assertPaidFor(what: string, got: { status: number; events: Event[] }): void {
      const charged = new Set<string>();
      for (const e of got.events) {
        if (e.kind === 'charged') charged.add(e.policy);
        else if (e.kind === 'lookup') assert.ok(charged.has('auth_ip'), `${what}: a token was looked up before auth_ip was charged`);
        else {
          const [method, path] = e.route.split(' ') as [string, string];
          for (const p of promised(DEFAULT_SURFACES, method, path))
            assert.ok(
              charged.has(p),
              `${what}: handler ${e.route} ran (${got.status}) without policy "${p}" (charged: ${[...charged].join(', ') || 'none'})`,
            );
        }
      }
      assert.ok(got.status < 500, `${what}: answered ${got.status}`);
    }

    const routes: ReadonlyArray<readonly [string, string]> = [
      ['GET', '/v1/status'],
      ['GET', '/v1/slow?ms=0'],
      ['POST', '/v1/auth/register'],
      ['POST', '/v1/auth/login'],
      ['GET', '/v1/notes'],
      ['POST', '/v1/notes'],
      ['GET', '/v1/notes/00000000-0000-4000-8000-000000000000'],
      ['PATCH', '/v1/notes/00000000-0000-4000-8000-000000000000'],
      ['DELETE', '/v1/notes/00000000-0000-4000-8000-000000000000'],
      ['GET', '/health/live'],
      ['GET', '/nowhere'],
    ];

    it('every spelling of every route, any method: a handler that ran was decided by its policies; a token is paid for before its lookup', async () => {
      let sent = 0;
      let handled = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...routes).chain(([method, path]) => {
            const [p, q] = path.split('?') as [string, string | undefined];
            return fc.tuple(
              fc.constantFrom(method, method, method, 'HEAD', 'GET', 'POST', 'OPTIONS', 'PUT'),
              spellings(p).map((s) => (q === undefined ? s : `${s}${s.includes('?') ? '&' : '?'}${q}`)),
              fc.constantFrom<readonly string[]>(
                [],
                [`Authorization: Bearer ${token}`],
                [`Authorization: Bearer ${token}`],
                ['Authorization: Bearer rmp_' + 'A'.repeat(43)],
                ['Authorization: Bearer rmp_' + 'b'.repeat(43), 'X-API-Key: {k}'],
                ['X-Forwarded-For: 10.9.9.9'],
              ),
            );
          }),
          async ([method, target, headers]) => {
            const body =
              method === 'POST' || method === 'PATCH' || method === 'PUT'
                ? JSON.stringify({ username: 'walker', password: 'x' })
                : undefined;
            const got = await send(method, target, headers, body);
            sent++;
            // Reached through a spelling other than the route's own.
            if (got.events.some((e) => e.kind === 'handler') && !routes.some(([, path]) => target === path)) handled++;
            assertPaidFor(`${method} ${target}`, got);
          },
        ),
        { numRuns: 300, ...seed },
      );
      // The generator must reach handlers through variant spellings, or it proves nothing.
      assert.ok(handled > sent / 10, `${handled} of ${sent} requests reached a handler through another spelling`);
    });

    it('a login for one account: no header, spelling or field the caller adds reaches a fresh credential bucket', async () => {
      const keyOf = (got: { events: Event[] }) => got.events.find((e) => e.kind === 'charged' && e.policy === 'login_credential');
      const invisible = fc.constantFrom(
        '\u200b',
        '\u200c',
        '\u200d',
        '\u2060',
        '\ufeff',
        '\u00ad',
        '\u0301',
        '\u034f',
        ' ',
        '\u00a0',
        '\t',
      );
      const fullwidth = (c: string) => (/[A-Za-z0-9]/.test(c) ? String.fromCharCode(c.charCodeAt(0) + 0xfee0) : c);
      const canonical = new Map<string, string>();
      let checked = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.stringMatching(/^[a-z][a-z0-9_.-]{2,12}$/),
          fc.array(fc.boolean(), { minLength: 13, maxLength: 13 }),
          fc.oneof(
            { arbitrary: fc.constant([]), weight: 2 },
            { arbitrary: fc.array(fc.boolean(), { minLength: 13, maxLength: 13 }), weight: 1 },
          ),
          fc.oneof(
            { arbitrary: fc.constant([]), weight: 2 },
            { arbitrary: fc.array(fc.tuple(fc.nat({ max: 13 }), invisible), { maxLength: 2 }), weight: 1 },
          ),
          fc.constantFrom<readonly string[]>(
            [],
            ['X-API-Key: k-' + 'x'.repeat(12)],
            ['X-API-Key: a', 'X-API-Key: b'],
            ['X-API-Key: {victim}'],
            ['X-Forwarded-For: 10.0.0.1'],
            ['Authorization: Basic dXNlcjpwYXNz'],
          ),
          fc.oneof(
            { arbitrary: fc.constant(''), weight: 3 },
            { arbitrary: fc.constantFrom(',"user":"other"', ',"Username":"other"'), weight: 1 },
          ),
          async (name, cases, wide, inserts, headers, extraField) => {
            let variant = [...name]
              .map((c, i) => (cases[i] === true ? c.toUpperCase() : c))
              .map((c, i) => (wide[i] === true ? fullwidth(c) : c));
            for (const [at, ch] of inserts) variant = [...variant.slice(0, at), ch, ...variant.slice(at)];
            if (!canonical.has(name)) {
              const first = await send('POST', '/v1/auth/login', [], JSON.stringify({ username: name, password: 'wrong password' }));
              canonical.set(name, (keyOf(first) as { key: string }).key);
            }
            const body = `{"username":${JSON.stringify(variant.join(''))},"password":"wrong password"${extraField}}`;
            const got = await send('POST', '/v1/auth/login', headers, body);
            // 401: the password was checked; then the account's own bucket paid for it.
            if (got.status === 401) {
              checked++;
              const charged = keyOf(got);
              assert.ok(charged !== undefined, 'login_credential was charged');
              assert.equal((charged as { key: string }).key, canonical.get(name), `${variant.join('')} was charged to another bucket`);
            } else assert.ok(got.status === 400 || got.status === 429, `answered ${got.status}`);
          },
        ),
        { numRuns: 40, ...seed },
      );
      assert.ok(checked > 5, `only ${checked} variants reached the password check`);
    });
  });
}

evasionSuite('memory');
evasionSuite('redis');

describe('the README example walked around (standalone Redis)', function () {
  this.timeout(120_000);
  let redis: RedisProcess;
  let example: ReturnType<typeof readmeExample>;
  let port: number;
  let server: Server;
  let handled: { route: string; policies: string }[] = [];

  before(async () => {
    redis = await startRedisServer();
    example = readmeExample(redis.url, 'evasion-readme');
    // Which policies had decided the request when each route handler ran: the RateLimit-Policy header set by then.
    const routes = routerStackOf(example.app) as { route?: { path: string; stack: { handle: (...a: unknown[]) => unknown }[] } }[];
    for (const layer of routes)
      if (layer.route !== undefined) {
        const route = layer.route;
        const last = route.stack[route.stack.length - 1] as { handle: (req: Request, res: Response, next: NextFunction) => unknown };
        const h = last.handle;
        last.handle = (req, res, next) => {
          handled.push({ route: route.path, policies: String(res.getHeader('RateLimit-Policy') ?? '') });
          return h(req, res, next);
        };
      }
    server = example.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
    await waitUntil('the Redis client to be ready', async () => example.client.status === 'ready', 10_000, 20);
  });
  after(async () => {
    server?.close();
    await example?.close();
    await redis?.stop();
  });

  const send = async (method: string, target: string, headers: readonly string[], body?: string) => {
    const lines = [`${method} ${target} HTTP/1.1`, 'Host: example.test', 'Connection: close', ...headers];
    if (body !== undefined) lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
    return raw(port, `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
  };
  let ip = 0;
  const fresh = () => `X-Forwarded-For: 198.18.${(++ip >> 8) & 255}.${ip & 255}`;

  it('its routes under every spelling: a handler runs only with its policies decided', async () => {
    const expected: Record<string, string[]> = { '/things': ['public'], '/login': ['login_ip', 'login_credential'] };
    let reached = 0;
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(['GET', '/things'], ['HEAD', '/things'], ['POST', '/login'])
          .chain(([m, p]) => fc.tuple(fc.constant(m), spellings(p))),
        async ([method, target]) => {
          handled = [];
          const res = await send(method, target, [fresh()], method === 'POST' ? '{"username":"u1","password":"p"}' : undefined);
          for (const h of handled) {
            reached++;
            for (const policy of expected[h.route] ?? ['?'])
              assert.ok(h.policies.includes(`"${policy}"`), `${method} ${target}: ${h.route} ran without "${policy}" (${h.policies})`);
          }
          assert.ok(res.status < 500, `${method} ${target}: ${res.status}`);
        },
      ),
      { numRuns: 200, ...seed },
    );
    assert.ok(reached > 40, `only ${reached} handler runs`);
  });

  it('a login for one account: once its credential bucket is spent, every respelling and added header is refused', async () => {
    const invisible = fc.constantFrom('\u200b', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u0301', ' ', '\u00a0', '\t');
    const fullwidth = (c: string) => (/[A-Za-z0-9]/.test(c) ? String.fromCharCode(c.charCodeAt(0) + 0xfee0) : c);
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[a-z][a-z0-9]{3,10}$/),
        fc.array(fc.constantFrom('upper', 'wide', 'keep'), { minLength: 11, maxLength: 11 }),
        fc.array(fc.tuple(fc.nat({ max: 11 }), invisible), { maxLength: 3 }),
        fc.constantFrom<readonly string[]>(
          [],
          ['X-API-Key: made-up-key-123456'],
          ['X-API-Key: a', 'X-API-Key: b'],
          ['X-API-Key: {victim}'],
        ),
        async (name, forms, inserts, headers) => {
          const user = `${name}${ip}`;
          for (let i = 0; i < 5; i++) {
            const ok = await send('POST', '/login', [fresh()], JSON.stringify({ username: user, password: 'p' }));
            assert.equal(ok.status, 200, `login ${i + 1} of ${user}`);
          }
          let variant = [...user].map((c, i) => (forms[i] === 'upper' ? c.toUpperCase() : forms[i] === 'wide' ? fullwidth(c) : c));
          for (const [at, ch] of inserts) variant = [...variant.slice(0, at), ch, ...variant.slice(at)];
          const res = await send('POST', '/login', [fresh(), ...headers], JSON.stringify({ username: variant.join(''), password: 'p' }));
          assert.equal(
            res.status,
            429,
            `${JSON.stringify(variant.join(''))} with ${headers.join(', ') || 'no header'} reached a fresh bucket`,
          );
          assert.match(res.body, /login_credential/);
        },
      ),
      { numRuns: 30, ...seed },
    );
  });
});
