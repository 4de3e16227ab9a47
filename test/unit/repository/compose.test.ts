import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { APP_METRICS_PORT } from '../../../scripts/compose/compose';
import { CONFIG_VARIABLES, loadConfig, parseRedisUrl } from '../../../src';
import { documentation } from '../../support/docs';

const ROOT = join(__dirname, '..', '..', '..');
const COMPOSE_DIR = join(ROOT, 'compose');

interface Service {
  image?: string;
  stop_grace_period?: string;
  build?: unknown;
  profiles?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
}

const file = parse(readFileSync(join(COMPOSE_DIR, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = file.services;

/** `${NAME:-default}` replaced by its default, as compose does with no .env. */
const withDefaults = (value: string) => value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

describe('the compose environment (static checks; no Docker engine here)', () => {
  it('has the sample API, Postgres primary and replica, Jaeger v2 and standalone Redis by default, Sentinel and Cluster as profiles', () => {
    const always = Object.entries(services)
      .filter(([, s]) => s.profiles === undefined)
      .map(([n]) => n)
      .sort();
    assert.deepEqual(always, ['app', 'jaeger', 'pg-primary', 'pg-replica', 'redis']);
    const inProfile = (p: string) =>
      Object.entries(services)
        .filter(([, s]) => s.profiles?.includes(p))
        .map(([n]) => n)
        .sort();
    assert.deepEqual(inProfile('sentinel'), [
      'redis-master',
      'redis-replica-1',
      'redis-replica-2',
      'sentinel-1',
      'sentinel-2',
      'sentinel-3',
    ]);
    assert.deepEqual(inProfile('cluster'), [
      'redis-cluster-init',
      'redis-node-1',
      'redis-node-2',
      'redis-node-3',
      'redis-node-4',
      'redis-node-5',
      'redis-node-6',
    ]);
    assert.deepEqual(inProfile('rolling'), ['app-2', 'app-3', 'lb']);
    assert.deepEqual(inProfile('observability'), ['grafana', 'prometheus']);
    assert.match(withDefaults(services['jaeger']?.image ?? ''), /^jaegertracing\/jaeger:2\./);
    const jaegerPorts = (services['jaeger']?.ports ?? []).map((p) => withDefaults(p).split(':')[2]);
    assert.deepEqual(jaegerPorts.sort(), ['16686', '4317', '4318']);
  });

  it('waits only on services that have a health check, and never from outside a profile into one', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        const target = services[dep];
        assert.ok(target !== undefined, `${name} depends on unknown ${dep}`);
        assert.ok(
          ['service_healthy', 'service_started', 'service_completed_successfully'].includes(condition),
          `${name} -> ${dep}: ${condition}`,
        );
        if (condition === 'service_healthy')
          assert.ok(target.healthcheck !== undefined, `${dep} has no healthcheck but ${name} waits for it`);
        if (s.profiles === undefined) assert.equal(target.profiles, undefined, `${name} (no profile) depends on profile-gated ${dep}`);
      }
    }
  });

  it('publishes ports on 127.0.0.1 only, never on the ports of the local Redis and Postgres (6379, 5432)', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        const [ip, host] = withDefaults(p).split(':');
        assert.equal(ip, '127.0.0.1', `${name} publishes ${p} on every interface`);
        assert.ok(host !== '6379' && host !== '5432', `${name} publishes ${p} on a port the test suite's services use`);
      }
    }
  });

  it('builds the app from a context of only what the Dockerfile copies (.dockerignore)', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    assert.equal(ignore[0], '*', 'everything is left out unless named');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    const dockerfile = readFileSync(join(COMPOSE_DIR, 'Dockerfile'), 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] as string).split(/\s+/));
    assert.ok(sources.length >= 4, sources.join(' '));
    for (const src of sources) assert.ok(allowed.includes(src.replace(/\/$/, '')), `${src} is copied but left out of the context`);
    for (const never of ['node_modules', 'dist', '.git', '.env']) assert.ok(!allowed.includes(never), never);
  });

  it('Postgres: the app is not the superuser, health is checked over TCP, the replica never creates its slot', () => {
    const primary = services['pg-primary'];
    const env = Object.fromEntries(Object.entries(primary?.environment ?? {}).map(([k, v]) => [k, withDefaults(String(v))]));
    const appUser = new URL(withDefaults(String(services['app']?.environment?.['DATABASE_WRITE_URL']))).username;
    assert.notEqual(env['POSTGRES_USER'], appUser, 'the app connects as a role of its own');
    for (const name of ['pg-primary', 'pg-replica']) {
      assert.match(JSON.stringify(services[name]?.healthcheck), /pg_isready -h 127\.0\.0\.1/, `${name}: TCP, not the init-time socket`);
    }
    const replica = readFileSync(join(ROOT, 'postgres', 'replica-entrypoint.sh'), 'utf8');
    assert.match(replica, /pg_basebackup [^\n]*-S replica1/);
    assert.doesNotMatch(replica, /pg_basebackup [^\n]*\s-C\b/, 'a retried or recreated replica would fail on "slot already exists"');
    assert.match(readFileSync(join(ROOT, 'postgres', 'primary-init.sh'), 'utf8'), /pg_create_physical_replication_slot\('replica1'\)/);
  });

  it('standalone Redis: the default user is off, the limiter connects as the ACL user of the README', () => {
    const command = (services['redis'] as Service & { command?: string[] }).command?.map(withDefaults) ?? [];
    const joined = command.join(' ');
    assert.match(joined, /--user default off/);
    assert.match(joined, /--user limiter on >\S+ ~rl:\* resetchannels -@all /);
    const url = new URL(withDefaults(String(services['app']?.environment?.['REDIS_URL'])).replace(/^redis:/, 'http:'));
    assert.equal(url.username, 'limiter');
    const readme = documentation();
    const documented = /ACL SETUSER limiter on >secret ~rl:\* (-@all(?: \+\S+)+)/.exec(readme)?.[1];
    assert.ok(documented !== undefined);
    assert.ok(joined.includes(documented), `compose grants exactly the README's commands: ${documented}`);
  });

  it("Sentinel and Cluster data nodes: the default user off, the limiter with the README's ACL, replication and health checks as users of their own", () => {
    const readme = documentation();
    const documented = /ACL SETUSER limiter on >secret ~rl:\* (-@all(?: \+\S+)+)/.exec(readme)?.[1];
    const clusterExtra = /On Cluster add `([^`]+)`/.exec(readme)?.[1];
    assert.ok(documented !== undefined && clusterExtra !== undefined);
    const script = readFileSync(join(ROOT, 'redis', 'acl-entrypoint.sh'), 'utf8');
    assert.match(script, /^user default off$/m);
    const limiterLine = /^user limiter on >\$\{REDIS_LIMITER_PASSWORD\} ~rl:\* resetchannels (.+)$/m.exec(script)?.[1] ?? '';
    assert.ok(limiterLine.startsWith(documented), `the limiter gets exactly the README's commands: ${limiterLine}`);
    assert.match(script, /--masteruser replica --masterauth/);
    const dataNodes = Object.entries(services).filter(
      ([n, s]) => /^redis-(master|replica-\d|node-\d)$/.test(n) && s.profiles !== undefined,
    );
    assert.equal(dataNodes.length, 9);
    for (const [name, s] of dataNodes) {
      const svc = s as Service & { entrypoint?: string[] };
      assert.deepEqual(svc.entrypoint, ['sh', '/redis-acl/acl-entrypoint.sh'], name);
      assert.match(JSON.stringify(svc.healthcheck), /--user admin/, `${name}: health checked as admin (the default user is off)`);
      const extra = svc.environment?.['REDIS_LIMITER_EXTRA'];
      assert.equal(
        extra,
        s.profiles?.includes('cluster') ? clusterExtra : undefined,
        `${name}: the Cluster commands on Cluster nodes only`,
      );
    }
    for (const n of [1, 2, 3]) assert.ok(services[`sentinel-${n}`]?.environment?.['REDIS_SENTINEL_PASSWORD'] !== undefined);
    assert.match(readFileSync(join(ROOT, 'sentinel', 'entrypoint.sh'), 'utf8'), /sentinel auth-user mymaster sentinel/);
    const example = readFileSync(join(COMPOSE_DIR, '.env.example'), 'utf8');
    for (const url of [...example.matchAll(/REDIS_URL=(\S+)/g)].map((m) => m[1] as string)) {
      assert.equal(parseRedisUrl(url).username, 'limiter', url);
    }
  });

  it('publishes each host port once, and mounts only files that exist', () => {
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => withDefaults(p).split(':')[1]));
    assert.equal(new Set(hostPorts).size, hostPorts.length, `duplicate host ports: ${hostPorts.join(', ')}`);
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0] as string;
        assert.ok(existsSync(resolve(COMPOSE_DIR, source)), `${name} mounts missing ${source}`);
      }
    }
    assert.ok(existsSync(join(COMPOSE_DIR, 'Dockerfile')));
  });

  it('gives the app an environment the process accepts in prod, with every variable known', () => {
    const env = Object.fromEntries(Object.entries(services['app']?.environment ?? {}).map(([k, v]) => [k, withDefaults(String(v))]));
    for (const k of Object.keys(env)) assert.ok(CONFIG_VARIABLES.includes(k), `unknown variable ${k}`);
    const config = loadConfig(env);
    assert.equal(config.mode, 'prod');
    assert.equal(config.rateLimit.backend, 'redis');
    assert.equal(config.tracing.endpoint, 'http://jaeger:4318');
  });

  it('metrics: each app serves them on its metrics port, which the smoke checks, Prometheus scrapes, and nothing publishes or routes', () => {
    const apps = Object.entries(services).filter(([n]) => /^app(-\d+)?$/.test(n));
    assert.equal(apps.length, 3);
    for (const [name, s] of apps) {
      const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, withDefaults(String(v))]));
      const config = loadConfig(env);
      assert.equal(config.metrics.port, APP_METRICS_PORT, `${name}: METRICS_PORT is scripts/compose/compose.ts's APP_METRICS_PORT`);
      assert.notEqual(config.metrics.port, config.port, `${name}: not on the public port`);
      for (const p of s.ports ?? [])
        assert.notEqual(withDefaults(p).split(':')[2], String(APP_METRICS_PORT), `${name} publishes its metrics port`);
    }
    const prometheus = parse(readFileSync(join(COMPOSE_DIR, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((t) => t.targets));
    assert.deepEqual(targets.sort(), apps.map(([n]) => `${n}:${APP_METRICS_PORT}`).sort());
    // The load balancer's servers are the public ports only.
    const cfg = readFileSync(join(COMPOSE_DIR, 'haproxy.cfg'), 'utf8');
    const servers = [...cfg.matchAll(/^\s*server \S+ (\S+)$/gm)].map((m) => m[1] as string);
    assert.equal(servers.length, 3);
    for (const server of servers) assert.match(server, /:8000$/, `${server}: the load balancer routes to the public port only`);
    assert.doesNotMatch(cfg, new RegExp(`:${APP_METRICS_PORT}\\b`), 'the load balancer never names the metrics port');
  });

  it('rolling: three identical app replicas behind a load balancer that checks readiness faster than the apps stop, and retries only what was not carried out', () => {
    const app = services['app'] as Service;
    for (const name of ['app-2', 'app-3']) {
      const { profiles: _p, ports: _ports, ...replica } = services[name] as Service;
      const { ports: _appPorts, ...first } = app;
      assert.deepEqual(replica, first, `${name} is the app's definition`);
      assert.equal(services[name]?.ports, undefined, `${name} is reached through the load balancer only`);
    }
    const env = app.environment ?? {};
    const delayMs = Number(env['SHUTDOWN_DELAY_MS']);
    const drainMs = Number(env['SHUTDOWN_DRAIN_TIMEOUT_MS']);
    const graceMs = Number(/^(\d+)s$/.exec(app.stop_grace_period ?? '')?.[1]) * 1000;
    // The worst case of the README's shutdown sequence: delay, drain, 250 ms linger, three cleanup phases of 5 s.
    assert.ok(
      graceMs > delayMs + drainMs + 250 + 3 * 5_000,
      `stop_grace_period ${app.stop_grace_period} leaves room for the whole shutdown`,
    );
    const cfg = readFileSync(join(COMPOSE_DIR, 'haproxy.cfg'), 'utf8');
    assert.match(cfg, /http-check send meth GET uri \/health\/ready /);
    const [, inter, fall] = /default-server check inter (\d+)s fall (\d+)/.exec(cfg) ?? [];
    assert.ok(
      Number(inter) * 1000 * Number(fall) * 2 <= delayMs,
      `the load balancer notices a stopping app (inter ${inter}s x fall ${fall}) well inside SHUTDOWN_DELAY_MS ${delayMs}`,
    );
    const retryOn = /^\s*retry-on (.+)$/m.exec(cfg)?.[1]?.split(/\s+/) ?? [];
    assert.ok(retryOn.includes('503') && retryOn.includes('conn-failure'), retryOn.join(' '));
    assert.ok(
      !retryOn.includes('response-timeout') && !retryOn.includes('all-retryable-errors'),
      'a request that may have been carried out is never sent twice',
    );
    for (const server of ['app', 'app-2', 'app-3']) assert.match(cfg, new RegExp(`^\\s*server \\S+ ${server}:8000$`, 'm'));
  });

  it('documents REDIS_URL values for each topology that the URL parser accepts', () => {
    const example = readFileSync(join(COMPOSE_DIR, '.env.example'), 'utf8');
    const urls = [...example.matchAll(/REDIS_URL=(\S+)/g)].map((m) => m[1] as string);
    assert.deepEqual(urls.map((u) => parseRedisUrl(u).kind).sort(), ['cluster', 'sentinel', 'standalone']);
  });

  it('configures cluster nodes so a failed shard does not stop the others, and sentinels above the flapping threshold', () => {
    const conf = readFileSync(join(ROOT, 'redis', 'cluster', 'redis-cluster.conf'), 'utf8');
    assert.match(conf, /^cluster-require-full-coverage no$/m);
    assert.match(conf, /^cluster-enabled yes$/m);
    const downAfter = Number(/SENTINEL_DOWN_AFTER_MS:-(\d+)/.exec(readFileSync(join(COMPOSE_DIR, 'docker-compose.yml'), 'utf8'))?.[1]);
    assert.ok(downAfter >= 1500, `down-after ${downAfter}`);
  });
});
