// Property-based tests (fast-check): key derivation, header formatting and config parsing hold
// their promises for any input, not just the examples elsewhere. A failure prints the seed and
// the smallest input that breaks the property.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Response } from 'express';
import { CONFIG_VARIABLES, ConfigError, customIdentity, ipIdentity, loadConfig, retryAfterSeconds, safeIdentity } from '../../src';
import { headerWriter, policyHeaderValue, type HeaderPolicy } from '../../src/limit/headers';
import { MAX_IDENTITY_LENGTH } from '../../src/limit/keys';

/** What may appear inside the braces of `rl:<policy>:{<identity>}`. */
const KEY_SAFE = /^[A-Za-z0-9._:@/#-]+$/;
/** Short strings over the characters that matter in a key: braces, separators, controls. */
const keyish = fc.string({ maxLength: 80, unit: fc.constantFrom(...'ab1.:@/#-_{} *?[]\u0000\n\r\u00e9') });
const anyText = fc.oneof(
  keyish,
  fc.string({ maxLength: 200, unit: 'grapheme' }),
  fc.string({ maxLength: 200, unit: 'binary' }),
  fc.string({ minLength: 60, maxLength: 20_000 }),
);

describe('properties', () => {
  describe('key derivation', () => {
    it('safeIdentity: any string becomes a short, key-safe, stable identity', () => {
      fc.assert(
        fc.property(anyText, (s) => {
          const id = safeIdentity(s);
          assert.ok(id.length >= 1 && id.length <= MAX_IDENTITY_LENGTH, `${id.length} characters`);
          assert.match(id, KEY_SAFE);
          assert.equal(safeIdentity(s), id);
        }),
        { numRuns: 500 },
      );
    });

    it('safeIdentity: two different values never share an identity', () => {
      fc.assert(
        fc.property(anyText, anyText, (a, b) => {
          fc.pre(a !== b);
          assert.notEqual(safeIdentity(a), safeIdentity(b));
        }),
        { numRuns: 500 },
      );
    });

    it("customIdentity: never shaped like another kind's marker, never outside the safe set", () => {
      fc.assert(
        fc.property(
          fc.oneof(
            anyText,
            fc.string({ maxLength: 10 }).map((s) => `i:${s}`),
            fc.constantFrom('p:1', 'c:x', 'i:10.0.0.1'),
          ),
          (s) => {
            const id = customIdentity(s);
            assert.doesNotMatch(id, /^[a-z]:/);
            assert.match(id, KEY_SAFE);
            assert.ok(id.length <= MAX_IDENTITY_LENGTH);
          },
        ),
        { numRuns: 500 },
      );
    });

    it('ipIdentity: IPv4 as is, IPv4-mapped IPv6 folded to it', () => {
      fc.assert(
        fc.property(fc.ipV4(), (ip) => {
          assert.equal(ipIdentity(ip, 64), ip);
          assert.equal(ipIdentity(`::ffff:${ip}`, 64), ip);
          assert.equal(ipIdentity(`::FFFF:${ip}`, 56), ip);
        }),
      );
    });

    it('ipIdentity: IPv6 addresses in one /64 share an identity, other /64s do not', () => {
      const group = fc.integer({ min: 0, max: 0xffff });
      const groups = (n: number) => fc.array(group, { minLength: n, maxLength: n });
      fc.assert(
        fc.property(groups(4), groups(4), groups(4), (prefix, hostA, hostB) => {
          fc.pre(!(prefix.slice(0, 2).every((g) => g === 0) && prefix[2] === 0));
          const hex = (g: readonly number[]) => g.map((x) => x.toString(16)).join(':');
          const a = ipIdentity(`${hex(prefix)}:${hex(hostA)}`, 64);
          const b = ipIdentity(`${hex(prefix)}:${hex(hostB)}`, 64);
          assert.equal(a, b);
          assert.match(a, KEY_SAFE);
          const other = [...prefix];
          other[3] = ((other[3] as number) + 1) & 0xffff;
          assert.notEqual(ipIdentity(`${hex(other)}:${hex(hostA)}`, 64), a);
        }),
      );
    });

    it('ipIdentity: anything (a forwarded header can say anything) becomes a key-safe identity', () => {
      fc.assert(
        fc.property(fc.oneof(anyText, fc.ipV6(), fc.ipV4Extended()), fc.integer({ min: 1, max: 128 }), (s, subnet) => {
          const id = ipIdentity(s, subnet);
          assert.match(id, KEY_SAFE);
          assert.ok(id.length <= MAX_IDENTITY_LENGTH, `${id.length} characters for ${JSON.stringify(s.slice(0, 40))}`);
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('header formatting', () => {
    const policyName = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,63}$/);
    const policy: fc.Arbitrary<HeaderPolicy> = fc.record({
      name: policyName,
      quota: fc.integer({ min: 1, max: 1_000_000_000 }),
      windowSeconds: fc.integer({ min: 1, max: 10_000_000 }),
    });
    const decision = fc.record({
      remaining: fc.integer({ min: -1_000, max: 1_000_000_000 }),
      resetUs: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ min: 0, max: 1e13, noNaN: true })),
    });

    function written(
      form: 'draft-10' | 'draft-7' | 'draft-6',
      policies: HeaderPolicy[],
      decisions: { remaining: number; resetUs: number }[],
    ) {
      const headers: Record<string, string> = {};
      const res = { setHeader: (k: string, v: string) => (headers[k] = v) } as unknown as Response;
      headerWriter(form)?.(
        res,
        policyHeaderValue(form, policies),
        policies,
        decisions.map((d) => d.remaining),
        decisions.map((d) => d.resetUs),
      );
      return headers;
    }

    it('draft-10: a structured-field list, one member per policy, integers never negative', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(policy, decision), { minLength: 1, maxLength: 5 }), (pairs) => {
          const h = written(
            'draft-10',
            pairs.map((p) => p[0]),
            pairs.map((p) => p[1]),
          );
          const member = /^"([a-z][a-z0-9_.-]*)";r=(\d+);t=(\d+)$/;
          const members = (h['RateLimit'] as string).split(', ');
          assert.equal(members.length, pairs.length);
          members.forEach((m, i) => {
            const match = member.exec(m);
            assert.ok(match, m);
            const [p, d] = pairs[i] as [HeaderPolicy, { remaining: number; resetUs: number }];
            assert.equal(match[1], p.name);
            assert.equal(Number(match[2]), Math.max(0, d.remaining));
            assert.equal(Number(match[3]), Math.ceil(d.resetUs / 1e6));
          });
          for (const m of (h['RateLimit-Policy'] as string).split(', ')) assert.match(m, /^"[a-z][a-z0-9_.-]*";q=\d+;w=\d+$/);
        }),
      );
    });

    it('draft-7 and draft-6: plain non-negative integers of the tightest policy', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(policy, decision), { minLength: 1, maxLength: 5 }), (pairs) => {
          const policies = pairs.map((p) => p[0]);
          const decisions = pairs.map((p) => p[1]);
          const minRemaining = Math.max(0, Math.min(...decisions.map((d) => d.remaining)));
          const d7 = written('draft-7', policies, decisions);
          assert.match(d7['RateLimit'] as string, /^limit=\d+, remaining=\d+, reset=\d+$/);
          assert.equal(Number(/remaining=(\d+)/.exec(d7['RateLimit'] as string)?.[1]), minRemaining);
          const d6 = written('draft-6', policies, decisions);
          for (const k of ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']) assert.match(d6[k] as string, /^\d+$/);
          assert.equal(Number(d6['RateLimit-Remaining']), minRemaining);
        }),
      );
    });

    it('Retry-After: a whole number of seconds, never 0 for a positive wait, never shorter than the wait', () => {
      fc.assert(
        fc.property(fc.double({ noNaN: false }), (s) => {
          const r = retryAfterSeconds(s);
          assert.ok(Number.isInteger(r) && r >= 0);
          if (Number.isFinite(s) && s > 0) {
            assert.ok(r >= 1 && r >= s);
            assert.ok(r - s < 1 || r === 1);
          } else assert.equal(r, 0);
        }),
        { numRuns: 1000 },
      );
    });
  });

  describe('config parsing', () => {
    const SECRET = 'hunter2SECRET';
    const plausible: Record<string, readonly string[]> = {
      MODE: ['dev', 'prod', 'PROD', ' prod'],
      PORT: ['0', '8000', '65536', '-1', '80.5'],
      RATE_LIMIT_BACKEND: ['memory', 'redis'],
      REDIS_URL: [
        'redis://127.0.0.1:6379',
        `redis://:${SECRET}@h:6379`,
        `redis+sentinel://u:${SECRET}@a:1,b:2/m`,
        `http://:${SECRET}@h`,
        `redis://:${SECRET}@h:99999`,
      ],
      DATABASE_URL: ['postgres://a@h/d', `postgres://u:${SECRET}@h:5432/d`, `mysql://u:${SECRET}@h/d`, `postgres://u:${SECRET}@`],
      DATABASE_WRITE_URL: [`postgres://u:${SECRET}@h/d`, `nope:${SECRET}`],
      DATABASE_READ_URL: [`postgres://u:${SECRET}@r/d`, `postgres://u:${SECRET}@:0/`],
      OTEL_EXPORTER_OTLP_ENDPOINT: [
        'http://jaeger:4318',
        `http://u:${SECRET}@c:4318`,
        `ftp://u:${SECRET}@c`,
        `http://c:4318/?token=${SECRET}`,
      ],
      TRACING_ENABLED: ['true', 'false'],
      RATE_LIMIT_ENABLED: ['true', 'false'],
      TRUST_PROXY: ['true', '1', '10.0.0.0/8', 'loopback, 999.1.1.1', '-1'],
      OTEL_RESOURCE_ATTRIBUTES: ['a=b', 'a=%ZZ', `a=${SECRET}`, '=x'],
    };
    const SECRET_VARS = new Set(['REDIS_URL', 'DATABASE_URL', 'DATABASE_WRITE_URL', 'DATABASE_READ_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT']);
    const value = (v: string) =>
      fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...(plausible[v] ?? ['1', 'true', ''])) },
        { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
        { weight: 1, arbitrary: fc.string({ maxLength: 300, unit: 'binary' }) },
      );
    /** A few variables set (most deployments set few), each plausible or arbitrary. */
    const env: fc.Arbitrary<Record<string, string>> = fc
      .uniqueArray(fc.constantFrom(...CONFIG_VARIABLES), { maxLength: 6 })
      .chain((vars) => fc.tuple(...vars.map(value)).map((vals) => Object.fromEntries(vars.map((v, i) => [v, vals[i] as string]))));

    it('any environment either loads a frozen config or is refused with one line naming a variable and the fix', () => {
      const outcomes = { loaded: 0, refused: new Set<string>() };
      fc.assert(
        fc.property(env, (e) => {
          let config;
          try {
            config = loadConfig(e as NodeJS.ProcessEnv);
          } catch (err) {
            assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
            assert.ok(CONFIG_VARIABLES.includes(err.variable), err.variable);
            assert.ok(!err.message.includes('\n'), 'one line');
            assert.match(err.message, /Fix: /);
            assert.ok(err.message.includes(err.variable));
            outcomes.refused.add(err.variable);
            return;
          }
          outcomes.loaded++;
          assert.ok(Object.isFrozen(config));
          assert.ok(Number.isInteger(config.port) && config.port >= 0 && config.port <= 65535);
          assert.ok(config.rateLimit.defaultRps > 0 && Number.isFinite(config.rateLimit.defaultRps));
        }),
        { numRuns: 1000 },
      );
      // Both branches were exercised, and refusals named many different variables.
      assert.ok(outcomes.loaded > 0, 'no environment loaded');
      assert.ok(outcomes.refused.size >= 10, `refusals named only ${[...outcomes.refused].join(', ')}`);
    });

    it('a refusal never echoes a secret-bearing value', () => {
      fc.assert(
        fc.property(env, (e) => {
          try {
            loadConfig(e as NodeJS.ProcessEnv);
          } catch (err) {
            if (!(err instanceof ConfigError)) throw err;
            const carriesSecret = [...SECRET_VARS].some((v) => (e as Record<string, string | undefined>)[v]?.includes(SECRET));
            if (carriesSecret) assert.ok(!err.message.includes(SECRET), err.message);
          }
        }),
        { numRuns: 1000 },
      );
    });
  });
});
