import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createMetrics } from '../../../src';
import { docPage } from '../../support/docs';

const ROOT = join(__dirname, '..', '..', '..');
const DIR = join(ROOT, 'compose', 'prometheus');
const RULES = join(DIR, 'rampart.rules.yml');

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const groups = (parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups;
const rules = groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert !== undefined);

/** The metric families the sample API exports (createMetrics, as main.ts makes it). */
async function exported(): Promise<Set<string>> {
  const text = await createMetrics().registry.metrics();
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}

describe('Prometheus rules (compose/prometheus)', () => {
  it('every rampart metric a rule reads is one the app exports; every recording rule used is defined', async () => {
    const families = await exported();
    const recorded = new Set(rules.flatMap((r) => (r.record === undefined ? [] : [r.record])));
    for (const r of rules) {
      for (const [name] of r.expr.matchAll(/\brampart_[a-z_]+/g)) {
        const family = name.replace(/_(bucket|count|sum)$/, '');
        assert.ok(families.has(family), `${r.record ?? r.alert} reads ${name}, which the app does not export`);
      }
      for (const [name] of r.expr.matchAll(/\brampart:[a-z0-9_:]+/g)) {
        assert.ok(recorded.has(name), `${r.record ?? r.alert} reads ${name}, which no rule records`);
      }
    }
  });

  it('every alert has a severity, a summary, a description and a runbook section in docs/operations.md', () => {
    const readme = docPage('operations.md');
    assert.ok(alerts.length >= 9, `${alerts.length} alerts`);
    for (const a of alerts) {
      assert.match(a.labels?.['severity'] ?? '', /^(critical|warning)$/, `${a.alert} severity`);
      assert.ok((a.annotations?.['summary'] ?? '').length > 10, `${a.alert} summary`);
      assert.match(a.annotations?.['description'] ?? '', /Check first:/, `${a.alert} description says what to check first`);
      const anchor = (a.annotations?.['runbook'] ?? '').replace(/^docs\/operations\.md#/, '');
      assert.equal(anchor, (a.alert as string).toLowerCase(), `${a.alert} runbook anchor`);
      assert.ok(readme.includes(`### ${a.alert}\n`), `docs/operations.md has a runbook section "### ${a.alert}"`);
    }
  });

  it('every alert has a promtool unit test that expects it to fire, and one evaluation where it must stay quiet', () => {
    const tests = (
      parse(readFileSync(join(DIR, 'tests', 'rampart.test.yml'), 'utf8')) as {
        tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
      }
    ).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const a of alerts) {
      const mine = tests.filter((t) => t.alertname === a.alert);
      assert.ok(
        mine.some((t) => t.exp_alerts.length > 0),
        `${a.alert}: a test where it fires`,
      );
      assert.ok(
        mine.some((t) => t.exp_alerts.length === 0),
        `${a.alert}: a test where it stays quiet`,
      );
    }
  });

  it('compose: Prometheus scrapes every app replica and loads the rules; Grafana gets the datasource and dashboard the files name', () => {
    const compose = parse(readFileSync(join(ROOT, 'compose', 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, { volumes?: string[]; environment?: Record<string, string> }>;
    };
    // One app service, scaled (`--scale app=N`): Prometheus finds every replica through Docker's DNS.
    const apps = Object.keys(compose.services).filter((n) => /^app(-\d+)?$/.test(n));
    assert.deepEqual(apps, ['app']);
    const config = parse(readFileSync(join(DIR, 'prometheus.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: {
        job_name: string;
        metrics_path: string;
        static_configs?: unknown;
        dns_sd_configs: { names: string[]; type: string; port: number }[];
      }[];
    };
    const job = config.scrape_configs.find((c) => c.job_name === 'rampart');
    assert.equal(job?.metrics_path, '/metrics');
    assert.equal(job?.static_configs, undefined, 'no fixed list of replicas');
    // Each app's metrics listener (METRICS_PORT), not its public PORT.
    assert.deepEqual(job?.dns_sd_configs, [
      { names: ['app'], type: 'A', port: Number(compose.services['app']?.environment?.['METRICS_PORT']), refresh_interval: '5s' },
    ]);
    const mounts = (service: string) =>
      new Map((compose.services[service]?.volumes ?? []).map((v) => v.split(':')).map(([from, to]) => [to as string, from as string]));
    const prom = mounts('prometheus');
    assert.deepEqual(config.rule_files, ['/etc/prometheus/rampart.rules.yml']);
    assert.equal(prom.get('/etc/prometheus/rampart.rules.yml'), './prometheus/rampart.rules.yml');
    assert.equal(prom.get('/etc/prometheus/prometheus.yml'), './prometheus/prometheus.yml');
    const grafana = mounts('grafana');
    assert.equal(grafana.get('/etc/grafana/provisioning'), './grafana/provisioning');
    const provider = parse(readFileSync(join(ROOT, 'compose', 'grafana', 'provisioning', 'dashboards', 'rampart.yml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    assert.equal(grafana.get(provider.providers[0]?.options.path ?? ''), './grafana/dashboards');
    const datasource = parse(readFileSync(join(ROOT, 'compose', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8')) as {
      datasources: { uid: string; url: string }[];
    };
    assert.equal(datasource.datasources[0]?.url, 'http://prometheus:9090');
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'compose', 'grafana', 'dashboards', 'rampart.json'), 'utf8')) as {
      panels: { title: string; datasource: { uid: string }; targets: { expr: string; datasource: { uid: string } }[] }[];
    };
    for (const panel of dashboard.panels) {
      assert.equal(panel.datasource.uid, datasource.datasources[0]?.uid, panel.title);
      assert.ok(panel.targets.length > 0, panel.title);
      for (const t of panel.targets) assert.equal(t.datasource.uid, datasource.datasources[0]?.uid, panel.title);
    }
  });
});
