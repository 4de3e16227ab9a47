import assert from 'node:assert/strict';
import { CONFIG_VARIABLES, ConfigError, loadConfig, loadTracingConfig, TRACING_CONFIG_VARIABLES, tracingEnabled } from '../../../src';

/** An environment that records every variable read from it. */
function watched(env: Record<string, string>): { env: NodeJS.ProcessEnv; read: Set<string> } {
  const read = new Set<string>();
  const proxy = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key);
    },
  });
  return { env: proxy, read };
}

function refusal(load: () => unknown): ConfigError {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('accepted');
}

const FULL = {
  TRACING_ENABLED: 'true',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318',
  OTEL_SERVICE_NAME: 'api',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
  OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod',
  OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
  OTEL_TRACES_SAMPLER_ARG: '0.25',
};

describe('loadTracingConfig (what the tracing preload reads)', () => {
  it('lists the tracing variables, all of them among CONFIG_VARIABLES', () => {
    assert.deepEqual(TRACING_CONFIG_VARIABLES, [
      'TRACING_ENABLED',
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_SERVICE_NAME',
      'OTEL_EXPORTER_OTLP_PROTOCOL',
      'OTEL_RESOURCE_ATTRIBUTES',
      'OTEL_TRACES_SAMPLER',
      'OTEL_TRACES_SAMPLER_ARG',
      'TRACING_TRUST_INCOMING_TRACESTATE',
    ]);
    for (const name of TRACING_CONFIG_VARIABLES) assert.ok(CONFIG_VARIABLES.includes(name), name);
  });

  it('reads the tracing variables and no other', () => {
    const { env, read } = watched({ ...FULL, MODE: 'production', LOG_LEVEL: 'warning', PATH: '/bin' });
    loadTracingConfig(env);
    assert.deepEqual([...read].sort(), [...TRACING_CONFIG_VARIABLES].sort());
  });

  it('tracingEnabled reads TRACING_ENABLED alone (default false) and refuses anything but true/false', () => {
    const { env, read } = watched({ ...FULL, OTEL_TRACES_SAMPLER_ARG: 'x' });
    assert.equal(tracingEnabled(env), true);
    assert.deepEqual([...read], ['TRACING_ENABLED']);
    assert.equal(tracingEnabled({}), false);
    assert.equal(tracingEnabled({ TRACING_ENABLED: '' }), false);
    const e = refusal(() => tracingEnabled({ TRACING_ENABLED: 'on' }));
    assert.equal(e.variable, 'TRACING_ENABLED');
    assert.match(e.message, /^TRACING_ENABLED="on" is invalid: expected "true" or "false"\. Fix: /);
  });

  it('loads where the sample API refuses: MODE=prod without DATABASE_URL, LOG_LEVEL=warning, MODE=production', () => {
    for (const other of [{ MODE: 'prod' }, { LOG_LEVEL: 'warning' }, { MODE: 'production' }]) {
      const env = { ...FULL, ...other };
      assert.throws(() => loadConfig(env), ConfigError, 'the sample API refuses it');
      assert.equal(loadTracingConfig(env).enabled, true);
    }
  });

  it('is the tracing part of loadConfig: same values, same refusals, same messages', () => {
    const env = { ...FULL, REDIS_URL: 'redis://127.0.0.1:6379' };
    assert.deepEqual(loadConfig(env).tracing, loadTracingConfig(env));
    assert.deepEqual(loadTracingConfig(env), {
      enabled: true,
      endpoint: 'http://jaeger:4318',
      serviceName: 'api',
      protocol: 'grpc',
      resourceAttributes: { 'deployment.environment': 'prod' },
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.25,
      trustIncomingTraceState: false,
    });
    assert.ok(Object.isFrozen(loadTracingConfig(env)));
    for (const bad of [
      { OTEL_TRACES_SAMPLER_ARG: 'x' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://u:pw@c:4318' },
      { OTEL_SERVICE_NAME: 'x'.repeat(300) },
    ]) {
      const fromTracing = refusal(() => loadTracingConfig(bad));
      const fromConfig = refusal(() => loadConfig(bad));
      assert.equal(fromTracing.variable, fromConfig.variable);
      assert.equal(fromTracing.message, fromConfig.message);
      assert.ok(!fromTracing.message.includes('\n'));
      assert.match(fromTracing.message, /Fix: /);
    }
  });

  it('checks every tracing variable even when tracing is off', () => {
    assert.equal(refusal(() => loadTracingConfig({ OTEL_TRACES_SAMPLER_ARG: '2' })).variable, 'OTEL_TRACES_SAMPLER_ARG');
  });
});
