import assert from 'node:assert/strict';
import { CONFIG_DEFAULTS, CONFIG_VARIABLES, ConfigError, LIFECYCLE_DEFAULTS, LOAD_SHEDDER_DEFAULTS, loadConfig } from '../../../src';

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    return err;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

const PROD_OK = {
  MODE: 'prod',
  RATE_LIMIT_BACKEND: 'redis',
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://app@db:5432/app',
};

describe('loadConfig', () => {
  it('pins every default (the README and .env.example repeat these)', () => {
    assert.deepEqual(CONFIG_DEFAULTS, {
      MODE: 'dev',
      PORT: 8000,
      METRICS_PORT: 9464,
      LOG_LEVEL: 'info',
      RATE_LIMIT_ENABLED: true,
      RATE_LIMIT_BACKEND: 'memory',
      REDIS_TLS_SKIP_HOSTNAME_CHECK: false,
      RATE_LIMIT_DEFAULT_RPS: 5,
      RATE_LIMIT_DEFAULT_BURST: 10,
      RATE_LIMIT_DEADLINE_MS: 100,
      RATE_LIMIT_DEV_FAIL_OPEN: false,
      TRUST_PROXY: false,
      TRACING_ENABLED: false,
      TRACING_TRUST_INCOMING_TRACESTATE: false,
      OTEL_SERVICE_NAME: 'rampart-sample',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      OTEL_TRACES_SAMPLER_ARG: 1,
      // The library's own defaults, not copies (pinned in lifecycle.test.ts, load-shedder.test.ts).
      DB_BREAKER_PRESET: 'balanced',
      SHUTDOWN_DELAY_MS: LIFECYCLE_DEFAULTS.delayMs,
      SHUTDOWN_DRAIN_TIMEOUT_MS: LIFECYCLE_DEFAULTS.drainTimeoutMs,
      LOAD_SHED_ENABLED: true,
      LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: LOAD_SHEDDER_DEFAULTS.maxEventLoopDelayMs,
      LOAD_SHED_MAX_IN_FLIGHT: LOAD_SHEDDER_DEFAULTS.maxInFlight,
    });
  });

  it('resolves an empty environment to the defaults, frozen', () => {
    const c = loadConfig({});
    assert.equal(c.mode, 'dev');
    assert.equal(c.port, 8000);
    assert.deepEqual(c.metrics, { port: undefined, host: undefined }, 'dev: /metrics on PORT');
    assert.equal(c.logLevel, 'info');
    assert.equal(c.trustProxy, false);
    assert.deepEqual(c.rateLimit, {
      enabled: true,
      backend: 'memory',
      redisUrl: undefined,
      redis: {
        caFile: undefined,
        certFile: undefined,
        keyFile: undefined,
        servername: undefined,
        skipHostnameCheck: false,
        sentinelTls: undefined,
        sentinelUsername: undefined,
        sentinelPassword: undefined,
      },
      defaultRps: 5,
      defaultBurst: 10,
      deadlineMs: 100,
      devFailOpen: false,
      policiesFile: undefined,
    });
    assert.deepEqual(c.tracing, {
      enabled: false,
      endpoint: undefined,
      serviceName: 'rampart-sample',
      protocol: 'http/protobuf',
      resourceAttributes: {},
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
      trustIncomingTraceState: false,
    });
    assert.deepEqual(c.database, { writeUrl: undefined, readUrl: undefined, breakerPreset: 'balanced' });
    assert.deepEqual(c.shutdown, { delayMs: 0, drainTimeoutMs: 30000 });
    assert.deepEqual(c.loadShed, { enabled: true, maxEventLoopDelayMs: 200, maxInFlight: 1000 });
    assert.ok(
      Object.isFrozen(c) &&
        Object.isFrozen(c.rateLimit) &&
        Object.isFrozen(c.shutdown) &&
        Object.isFrozen(c.loadShed) &&
        Object.isFrozen(c.metrics),
    );
  });

  it('parses every variable it documents', () => {
    const c = loadConfig({
      ...PROD_OK,
      PORT: '9000',
      METRICS_PORT: '9100',
      METRICS_HOST: '10.0.0.5',
      LOG_LEVEL: 'debug',
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_DEFAULT_RPS: '2.5',
      RATE_LIMIT_DEFAULT_BURST: '40',
      RATE_LIMIT_DEADLINE_MS: '250',
      RATE_LIMIT_DEV_FAIL_OPEN: 'false',
      RATE_LIMIT_POLICIES_FILE: '/etc/rampart/policies.json',
      TRUST_PROXY: '10.0.0.0/8, loopback',
      TRACING_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318',
      OTEL_SERVICE_NAME: 'api',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=a%20b%2Cc',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      TRACING_TRUST_INCOMING_TRACESTATE: 'true',
      DATABASE_WRITE_URL: 'postgres://app@primary:5432/app',
      DATABASE_READ_URL: 'postgresql://app@replica:5432/app',
      DB_BREAKER_PRESET: 'conservative',
      SHUTDOWN_DELAY_MS: '5000',
      SHUTDOWN_DRAIN_TIMEOUT_MS: '20000',
      LOAD_SHED_ENABLED: 'false',
      LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
      LOAD_SHED_MAX_IN_FLIGHT: '64',
    });
    assert.deepEqual(c.loadShed, { enabled: false, maxEventLoopDelayMs: 0, maxInFlight: 64 });
    assert.equal(c.mode, 'prod');
    assert.equal(c.port, 9000);
    assert.deepEqual(c.metrics, { port: 9100, host: '10.0.0.5' });
    assert.equal(c.logLevel, 'debug');
    assert.deepEqual(c.trustProxy, ['10.0.0.0/8', 'loopback']);
    assert.equal(c.rateLimit.backend, 'redis');
    assert.equal(c.rateLimit.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.rateLimit.defaultRps, 2.5);
    assert.equal(c.rateLimit.defaultBurst, 40);
    assert.equal(c.rateLimit.deadlineMs, 250);
    assert.equal(c.rateLimit.policiesFile, '/etc/rampart/policies.json');
    assert.deepEqual(c.tracing, {
      enabled: true,
      endpoint: 'http://jaeger:4318',
      serviceName: 'api',
      protocol: 'grpc',
      resourceAttributes: { 'deployment.environment': 'prod', team: 'a b,c' },
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.25,
      trustIncomingTraceState: true,
    });
    assert.deepEqual(c.database, {
      writeUrl: 'postgres://app@primary:5432/app',
      readUrl: 'postgresql://app@replica:5432/app',
      breakerPreset: 'conservative',
    });
    assert.deepEqual(c.shutdown, { delayMs: 5000, drainTimeoutMs: 20000 });
    // 31, and the 8 REDIS_TLS_* / REDIS_SENTINEL_* ones (their own test below: they need a TLS URL).
    assert.equal(CONFIG_VARIABLES.length, 39);
  });

  it('reads the Redis TLS and Sentinel variables, and refuses the ones REDIS_URL would ignore or that lack a partner', () => {
    const c = loadConfig({
      REDIS_URL: 'rediss+sentinel://s1:26379,s2:26379/mymaster',
      REDIS_TLS_CA_FILE: '/etc/redis/ca.pem',
      REDIS_TLS_CERT_FILE: '/etc/redis/client.pem',
      REDIS_TLS_KEY_FILE: '/etc/redis/client.key',
      REDIS_TLS_SERVERNAME: 'redis.internal',
      REDIS_TLS_SKIP_HOSTNAME_CHECK: 'true',
      REDIS_SENTINEL_TLS: 'false',
      REDIS_SENTINEL_USERNAME: 'sentinel-user',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    assert.deepEqual(c.rateLimit.redis, {
      caFile: '/etc/redis/ca.pem',
      certFile: '/etc/redis/client.pem',
      keyFile: '/etc/redis/client.key',
      servername: 'redis.internal',
      skipHostnameCheck: true,
      sentinelTls: false,
      sentinelUsername: 'sentinel-user',
      sentinelPassword: 'sentinel-secret',
    });
    // TLS only to the sentinels is TLS too.
    assert.equal(
      loadConfig({ REDIS_URL: 'redis+sentinel://s1/m', REDIS_SENTINEL_TLS: 'true', REDIS_TLS_CA_FILE: '/ca.pem' }).rateLimit.redis.caFile,
      '/ca.pem',
    );
    const refusal = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err;
      }
      assert.fail(`accepted ${JSON.stringify(env)}`);
    };
    let err = refusal({ REDIS_URL: 'redis://h:6379', REDIS_TLS_CA_FILE: '/ca.pem' });
    assert.equal(err.variable, 'REDIS_TLS_CA_FILE');
    assert.match(err.message, /REDIS_TLS_CA_FILE is set but REDIS_URL \(redis:\/\/\) makes no TLS connection.*Fix: use rediss:\/\//);
    err = refusal({ REDIS_URL: 'rediss+cluster://n1:7000', REDIS_TLS_CERT_FILE: '/c.pem' });
    assert.equal(err.variable, 'REDIS_TLS_KEY_FILE');
    assert.match(err.message, /REDIS_TLS_CERT_FILE is set without REDIS_TLS_KEY_FILE/);
    err = refusal({ REDIS_URL: 'rediss://h:6380', REDIS_SENTINEL_PASSWORD: 'x' });
    assert.equal(err.variable, 'REDIS_SENTINEL_PASSWORD');
    assert.doesNotMatch(err.message, /=x\b|"x"/, 'the password is not repeated');
    err = refusal({ REDIS_URL: 'rediss://h:6380', REDIS_TLS_SKIP_HOSTNAME_CHECK: 'yes' });
    assert.equal(err.variable, 'REDIS_TLS_SKIP_HOSTNAME_CHECK');
  });

  it('reads DATABASE_URL for both pools when no split is given, and treats empty as unset', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://a@h/d', REDIS_URL: '', PORT: '' });
    assert.deepEqual(c.database, { writeUrl: 'postgres://a@h/d', readUrl: 'postgres://a@h/d', breakerPreset: 'balanced' });
    assert.equal(c.port, 8000);
  });

  it('accepts the topologies of REDIS_URL', () => {
    for (const url of [
      'redis://127.0.0.1:6379',
      'rediss://user:pw@cache.example:6380/2',
      'redis+sentinel://:pw@s1:26379,s2:26379,s3:26379/mymaster',
      'redis+cluster://n1:7000,n2:7001,[::1]:7002',
    ]) {
      assert.equal(loadConfig({ REDIS_URL: url }).rateLimit.redisUrl, url);
    }
  });

  describe('REDIS_URL and RATE_LIMIT_BACKEND', () => {
    it('REDIS_URL with RATE_LIMIT_BACKEND unset (or empty) selects redis', () => {
      assert.equal(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).rateLimit.backend, 'redis');
      assert.equal(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_BACKEND: '' }).rateLimit.backend, 'redis');
      assert.equal(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_BACKEND: 'redis' }).rateLimit.backend, 'redis');
      assert.equal(loadConfig({}).rateLimit.backend, CONFIG_DEFAULTS.RATE_LIMIT_BACKEND, 'memory without REDIS_URL');
      assert.equal(loadConfig({ RATE_LIMIT_BACKEND: 'memory' }).rateLimit.backend, 'memory');
    });

    it('so MODE=prod needs only REDIS_URL for the Redis backend', () => {
      const { RATE_LIMIT_BACKEND: _omit, ...prod } = PROD_OK;
      assert.equal(loadConfig(prod).rateLimit.backend, 'redis');
    });

    it('refuses RATE_LIMIT_BACKEND=memory set together with REDIS_URL, naming both and the fix, in any mode', () => {
      for (const env of [
        { RATE_LIMIT_BACKEND: 'memory', REDIS_URL: 'redis://127.0.0.1:6379' },
        { RATE_LIMIT_BACKEND: 'memory', REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_ENABLED: 'false' },
        { ...PROD_OK, RATE_LIMIT_BACKEND: 'memory', RATE_LIMIT_ENABLED: 'false' },
      ]) {
        const e = refusal(env);
        assert.equal(e.variable, 'RATE_LIMIT_BACKEND');
        assert.match(e.message, /^RATE_LIMIT_BACKEND=memory is set together with REDIS_URL.*\. Fix: unset RATE_LIMIT_BACKEND/);
      }
      const secret = refusal({ RATE_LIMIT_BACKEND: 'memory', REDIS_URL: 'redis://:hunter2@h:6379' });
      assert.ok(!secret.message.includes('hunter2'), secret.message);
    });
  });

  describe('METRICS_PORT and METRICS_HOST: where /metrics is served', () => {
    it('MODE=prod: a listener of its own on 9464 by default, never PORT; METRICS_PORT=public opts back in', () => {
      assert.deepEqual(loadConfig(PROD_OK).metrics, { port: CONFIG_DEFAULTS.METRICS_PORT, host: undefined });
      assert.deepEqual(loadConfig({ ...PROD_OK, METRICS_PORT: '' }).metrics, { port: 9464, host: undefined }, 'empty is unset');
      assert.deepEqual(loadConfig({ ...PROD_OK, METRICS_PORT: '9100', METRICS_HOST: '::' }).metrics, { port: 9100, host: '::' });
      assert.deepEqual(loadConfig({ ...PROD_OK, METRICS_PORT: 'public' }).metrics, { port: undefined, host: undefined });
    });

    it('dev: on PORT by default; a METRICS_PORT or a METRICS_HOST asks for the listener of its own', () => {
      assert.equal(loadConfig({}).metrics.port, undefined);
      assert.equal(loadConfig({ METRICS_PORT: 'public' }).metrics.port, undefined);
      assert.deepEqual(loadConfig({ METRICS_PORT: '9100' }).metrics, { port: 9100, host: undefined });
      assert.deepEqual(loadConfig({ METRICS_HOST: '127.0.0.1' }).metrics, { port: 9464, host: '127.0.0.1' });
      assert.deepEqual(loadConfig({ METRICS_HOST: 'localhost' }).metrics, { port: 9464, host: 'localhost' });
    });

    it('accepts port 0 (any free port) on both listeners: they never collide', () => {
      assert.deepEqual(loadConfig({ ...PROD_OK, PORT: '0', METRICS_PORT: '0' }).metrics, { port: 0, host: undefined });
    });

    it('refuses a metrics port equal to PORT, set or by default, naming METRICS_PORT and the fix', () => {
      for (const env of [
        { METRICS_PORT: '8000' },
        { ...PROD_OK, METRICS_PORT: '8000' },
        { ...PROD_OK, PORT: '9100', METRICS_PORT: '9100' },
        { ...PROD_OK, PORT: '9464' },
        { PORT: '9464', METRICS_HOST: '0.0.0.0' },
      ]) {
        const e = refusal(env);
        assert.equal(e.variable, 'METRICS_PORT', JSON.stringify(env));
        assert.match(
          e.message,
          /^METRICS_PORT.* the public PORT=\d+: .*Fix: set METRICS_PORT to a port of its own \(e\.g\. \d+\), or METRICS_PORT=public/,
        );
      }
      assert.match(refusal({ ...PROD_OK, PORT: '9464' }).message, /^METRICS_PORT is unset, and its default \(9464, with MODE=prod\)/);
      assert.match(refusal({ ...PROD_OK, PORT: '9464' }).message, /e\.g\. 9465/, 'the fix never suggests PORT itself');
    });

    it('refuses METRICS_HOST with METRICS_PORT=public (it would be ignored)', () => {
      const e = refusal({ ...PROD_OK, METRICS_PORT: 'public', METRICS_HOST: '127.0.0.1' });
      assert.equal(e.variable, 'METRICS_HOST');
      assert.match(e.message, /^METRICS_HOST is set together with METRICS_PORT=public.*Fix: unset METRICS_HOST/);
    });

    it('says what unsetting a malformed one gives', () => {
      assert.match(
        refusal({ METRICS_PORT: 'x' }).message,
        /unset it \(9464 with MODE=prod or METRICS_HOST set, else \/metrics on PORT\)\.$/,
      );
      assert.match(refusal({ METRICS_HOST: 'x y' }).message, /unset it \(every interface\)\.$/);
    });
  });

  it('accepts TRUST_PROXY as a switch or a hop count', () => {
    assert.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true);
    assert.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2);
    assert.deepEqual(loadConfig({ TRUST_PROXY: '::1,fd00::/8' }).trustProxy, ['::1', 'fd00::/8']);
  });

  describe('production fail-closed rules', () => {
    it('accepts a complete production environment', () => {
      assert.equal(loadConfig(PROD_OK).mode, 'prod');
      assert.equal(
        loadConfig({ ...PROD_OK, RATE_LIMIT_BACKEND: 'memory', REDIS_URL: '', RATE_LIMIT_ENABLED: 'false' }).rateLimit.enabled,
        false,
      );
    });

    it('reports every broken rule in one refusal, on one line, named by the first', () => {
      const e = refusal({ MODE: 'prod', RATE_LIMIT_DEV_FAIL_OPEN: 'true', TRACING_ENABLED: 'true' });
      const variables = ['RATE_LIMIT_BACKEND', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'RATE_LIMIT_DEV_FAIL_OPEN', 'DATABASE_URL'];
      assert.equal(e.variable, variables[0]);
      assert.deepEqual((e as ConfigError & { variables?: string[] }).variables, variables);
      assert.match(e.message, /^4 problems: \(1\) MODE=prod with RATE_LIMIT_ENABLED=true requires/);
      for (const [i, name] of variables.entries()) assert.ok(e.message.includes(`(${i + 1}) `) && e.message.includes(name), name);
      // One broken rule: its own message, as before.
      assert.doesNotMatch(refusal({ ...PROD_OK, RATE_LIMIT_DEV_FAIL_OPEN: 'true' }).message, /problems:/);
    });

    it('refuses rate limiting without Redis', () => {
      const e = refusal({ ...PROD_OK, RATE_LIMIT_BACKEND: 'memory' });
      assert.equal(e.variable, 'RATE_LIMIT_BACKEND');
      assert.match(e.message, /MODE=prod.*RATE_LIMIT_BACKEND=redis.*Fix:/);
      const noBackend = refusal({ MODE: 'prod', DATABASE_URL: 'postgres://a@h/d' });
      assert.equal(noBackend.variable, 'RATE_LIMIT_BACKEND');
    });

    it('refuses the redis backend without REDIS_URL (in any mode)', () => {
      const e = refusal({ ...PROD_OK, REDIS_URL: '' });
      assert.equal(e.variable, 'REDIS_URL');
      assert.match(e.message, /REDIS_URL is required.*Fix: set REDIS_URL/);
      assert.equal(refusal({ RATE_LIMIT_BACKEND: 'redis' }).variable, 'REDIS_URL');
    });

    it('refuses tracing without an endpoint', () => {
      const e = refusal({ ...PROD_OK, TRACING_ENABLED: 'true' });
      assert.equal(e.variable, 'OTEL_EXPORTER_OTLP_ENDPOINT');
      assert.match(e.message, /Fix: set it to the collector URL/);
      assert.equal(loadConfig({ TRACING_ENABLED: 'true' }).tracing.enabled, true, 'allowed outside prod');
    });

    it('refuses the dev fail-open switch', () => {
      const e = refusal({ ...PROD_OK, RATE_LIMIT_DEV_FAIL_OPEN: 'true' });
      assert.equal(e.variable, 'RATE_LIMIT_DEV_FAIL_OPEN');
      assert.equal(loadConfig({ RATE_LIMIT_DEV_FAIL_OPEN: 'true' }).rateLimit.devFailOpen, true, 'honoured in dev');
    });

    it('refuses the embedded database', () => {
      const { DATABASE_URL: _omit, ...noDb } = PROD_OK;
      assert.equal(refusal(noDb).variable, 'DATABASE_URL');
    });
  });

  describe('malformed values', () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ['MODE', 'production'],
      ['PORT', '80a'],
      ['PORT', '70000'],
      ['PORT', '-1'],
      ['METRICS_PORT', '70000'],
      ['METRICS_PORT', 'Public'],
      ['METRICS_PORT', '9464 '],
      ['METRICS_HOST', '0.0.0.0:9464'],
      ['METRICS_HOST', 'http://0.0.0.0'],
      ['METRICS_HOST', '[::1]'],
      ['METRICS_HOST', '999.1.1.1'],
      ['METRICS_HOST', 'bad host'],
      ['METRICS_HOST', '-lead.example'],
      ['LOG_LEVEL', 'verbose'],
      ['RATE_LIMIT_ENABLED', 'yes'],
      ['RATE_LIMIT_ENABLED', '1'],
      ['RATE_LIMIT_BACKEND', 'memcached'],
      ['REDIS_URL', 'http://127.0.0.1:6379'],
      ['REDIS_URL', 'redis://host:port:6379'],
      ['RATE_LIMIT_DEFAULT_RPS', 'abc'],
      ['RATE_LIMIT_DEFAULT_RPS', '0'],
      ['RATE_LIMIT_DEFAULT_RPS', '1e3'],
      ['RATE_LIMIT_DEFAULT_BURST', '2.5'],
      ['RATE_LIMIT_DEFAULT_BURST', '0'],
      ['RATE_LIMIT_DEADLINE_MS', '0'],
      ['RATE_LIMIT_DEADLINE_MS', '1.5'],
      ['RATE_LIMIT_DEV_FAIL_OPEN', 'TRUE'],
      ['TRUST_PROXY', '10.0.0.0/40'],
      ['TRUST_PROXY', 'proxy.internal'],
      ['TRACING_ENABLED', 'on'],
      ['OTEL_EXPORTER_OTLP_ENDPOINT', 'jaeger:4318'],
      ['OTEL_EXPORTER_OTLP_ENDPOINT', 'ftp://jaeger:4318'],
      ['OTEL_EXPORTER_OTLP_PROTOCOL', 'http'],
      ['OTEL_RESOURCE_ATTRIBUTES', 'novalue'],
      ['OTEL_RESOURCE_ATTRIBUTES', 'a=1,a=2'],
      ['OTEL_RESOURCE_ATTRIBUTES', 'bad key=1'],
      ['OTEL_RESOURCE_ATTRIBUTES', 'k=%E0%A4%A'],
      ['OTEL_TRACES_SAMPLER', 'parentbased_traceidration'],
      ['OTEL_TRACES_SAMPLER_ARG', '1.5'],
      ['OTEL_TRACES_SAMPLER_ARG', ''.padEnd(1, 'x')],
      ['DATABASE_URL', 'not a url'],
      ['DATABASE_URL', 'mysql://a@h/d'],
      ['DATABASE_READ_URL', 'postgres://'],
      ['SHUTDOWN_DELAY_MS', '1.5'],
      ['SHUTDOWN_DRAIN_TIMEOUT_MS', '0'],
      ['SHUTDOWN_DRAIN_TIMEOUT_MS', 'soon'],
      ['LOAD_SHED_ENABLED', 'yes'],
      ['LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS', '-1'],
      ['LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS', '50ms'],
      ['LOAD_SHED_MAX_IN_FLIGHT', '2.5'],
    ];
    for (const [name, value] of cases) {
      it(`refuses ${name}=${JSON.stringify(value)}, naming it and the fix`, () => {
        const e = refusal({ [name]: value });
        assert.equal(e.variable, name);
        assert.ok(e.message.startsWith(name), e.message);
        assert.match(e.message, /is invalid: expected .+\. Fix: set /);
      });
    }

    it('never echoes a value that may carry a password', () => {
      const e = refusal({ DATABASE_URL: 'mysql://user:hunter2@h/d' });
      assert.ok(!e.message.includes('hunter2'), e.message);
      const r = refusal({ REDIS_URL: 'http://:hunter2@h:6379' });
      assert.ok(!r.message.includes('hunter2'), r.message);
    });

    it('refuses a collector URL with credentials or a query (it would be logged and exported as-is)', () => {
      for (const url of ['http://user:pw@jaeger:4318', 'http://jaeger:4318/?token=x', 'http://jaeger:4318/#x']) {
        const e = refusal({ OTEL_EXPORTER_OTLP_ENDPOINT: url });
        assert.equal(e.variable, 'OTEL_EXPORTER_OTLP_ENDPOINT');
        assert.ok(!e.message.includes('pw@'));
      }
    });

    it('refuses a read replica without a primary', () => {
      assert.equal(refusal({ DATABASE_READ_URL: 'postgres://a@replica/d' }).variable, 'DATABASE_READ_URL');
    });
  });
});
