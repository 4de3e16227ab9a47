// Property-based tests (fast-check): config parsing holds its promises for any input, not just
// the examples in config.test.ts. A failure prints the seed and the smallest input that breaks it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../../../src';

describe('properties', () => {
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
