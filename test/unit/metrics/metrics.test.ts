import assert from 'node:assert/strict';
import { createMetrics, METRICS_DEFAULTS } from '../../../src';

// src/metrics/metrics.ts: the registry, and the limiter's observer that feeds it.
describe('metrics', () => {
  it('pins the defaults; each registry is its own (no global state)', async () => {
    assert.deepEqual(METRICS_DEFAULTS, { processMetrics: true });
    const withProcess = await createMetrics().registry.metrics();
    assert.match(withProcess, /process_cpu_user_seconds_total/);
    const a = createMetrics({ processMetrics: false });
    const b = createMetrics({ processMetrics: false });
    a.rateLimit.decisionCounter('p', 'allowed')();
    assert.match(await a.registry.metrics(), /rampart_rate_limit_decisions_total\{policy="p",outcome="allowed"\} 1/);
    assert.doesNotMatch(await b.registry.metrics(), /outcome="allowed"\} 1/);
    assert.doesNotMatch(await b.registry.metrics(), /process_cpu/);
  });

  it('the rate-limit observer: counters, the latency histogram, backend errors, and the breaker gauge (0 closed, 1 open, 2 half-open)', async () => {
    const { registry, rateLimit } = createMetrics({ processMetrics: false });
    const limited = rateLimit.decisionCounter('login', 'limited');
    limited();
    limited();
    rateLimit.decisionTimer('redis')(0.003);
    rateLimit.backendError('redis', 'timeout');
    rateLimit.backendError('redis', 'error', '10.0.0.1:6379');
    const text = () => registry.metrics();
    assert.match(await text(), /rampart_rate_limit_decisions_total\{policy="login",outcome="limited"\} 2/);
    assert.match(await text(), /rampart_rate_limit_decision_seconds_count\{store="redis"\} 1/);
    assert.match(await text(), /rampart_rate_limit_decision_seconds_bucket\{le="0.005",store="redis"\} 1/);
    // Past the deadline too: how late a decision was, up to 1 s.
    const les = [...(await text()).matchAll(/rampart_rate_limit_decision_seconds_bucket\{le="([^"]+)",store="redis"\}/g)].map((m) => m[1]);
    assert.deepEqual(les, ['0.0005', '0.001', '0.002', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '+Inf']);
    assert.match(await text(), /rampart_rate_limit_backend_errors_total\{store="redis",reason="timeout",shard=""\} 1/);
    assert.match(await text(), /rampart_rate_limit_backend_errors_total\{store="redis",reason="error",shard="10.0.0.1:6379"\} 1/);
    for (const [state, value] of [
      ['OPEN', 1],
      ['HALF_OPEN', 2],
      ['CLOSED', 0],
    ] as const) {
      rateLimit.breakerChanged('redis', state);
      assert.match(await text(), new RegExp(`rampart_rate_limit_breaker_state\\{store="redis"\\} ${value}\\n`));
      rateLimit.shardBreakerChanged?.('redis', 'a:1', state);
      assert.match(await text(), new RegExp(`rampart_rate_limit_shard_breaker_state\\{store="redis",shard="a:1"\\} ${value}\\n`));
    }
    // A shard's error series start at 0 with its breaker…
    assert.match(await text(), /rampart_rate_limit_backend_errors_total\{store="redis",reason="breaker_open",shard="a:1"\} 0\n/);
    // …and go with it when it is forgotten (its master replaced, or the limiter closed).
    rateLimit.shardBreakerChanged?.('redis', 'a:1', undefined);
    assert.doesNotMatch(await text(), /shard="a:1"/);
  });
});
