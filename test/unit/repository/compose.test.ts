import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { parse } from 'yaml';
import { APP_METRICS_PORT, variablesRead } from '../../../scripts/compose/compose';
import { DRILL_ENV, TRUSTING_DRILL } from '../../../scripts/compose/drill-kit';
import { FAULTS_ENV } from '../../../scripts/compose/faults-drill';
import { CONFIG_VARIABLES, defaultPolicies, loadConfig, loadPolicyFile, parseRedisUrl } from '../../../src';
import { runs } from '../../support/canaries';
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
    assert.deepEqual(always, ['app', 'jaeger', 'lb', 'pg-primary', 'pg-replica', 'redis']);
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
    assert.deepEqual(inProfile('faults'), ['faults']);
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

  it('reads every variable the drills set (a variable it never reads would leave the app on its default)', () => {
    const read = variablesRead();
    for (const env of [DRILL_ENV, TRUSTING_DRILL, FAULTS_ENV])
      for (const name of Object.keys(env)) assert.ok(read.has(name), `${name}: set by a drill, read nowhere in the compose file`);
    assert.ok(!read.has('RAMPART_NO_SUCH_VARIABLE'));
  });

  it('counts a variable as read only where compose reads it: every form in a value, never in a comment or after $$', () => {
    // A generated compose text: each name once, read in a value (any interpolation form), or only
    // in a comment (its own line, or after a value) or escaped (`$$`, a literal dollar).
    const form = fc.constantFrom('$N', '${N}', '${N:-d:1}', '${N-d}', '${N:?set it}', '${N?set it}', '${N:+on}', '${N+on}');
    const filler = fc.stringMatching(/^[a-z0-9./:-]{0,8}$/);
    const placed = fc.record({
      where: fc.constantFrom('value', 'line comment', 'inline comment', 'escaped'),
      form,
      before: filler,
      after: filler,
    });
    const doc = fc
      .uniqueArray(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,12}$/), { minLength: 1, maxLength: 8 })
      .chain((names) => fc.tuple(fc.constant(names), fc.array(placed, { minLength: names.length, maxLength: names.length })));
    fc.assert(
      fc.property(doc, ([names, places]) => {
        const lines = ['services:', '  app:', '    environment:'];
        names.forEach((name, i) => {
          const p = places[i] as (typeof places)[number];
          const ref = p.form.replace('N', name);
          const value = `"${p.before}${p.where === 'escaped' ? `$${ref}` : ref} ${p.after}"`;
          if (p.where === 'line comment') lines.push(`      # K${i}: ${value}`, `      K${i}: "x"`);
          else if (p.where === 'inline comment') lines.push(`      K${i}: "x" # ${value}`);
          else lines.push(`      K${i}: ${value}`);
        });
        const expected = names.filter((_, i) => places[i]?.where === 'value').sort();
        assert.deepEqual([...variablesRead(lines.join('\n'))].sort(), expected, lines.join('\n'));
      }),
      runs(300),
    );
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
    assert.equal(apps.length, 1, 'one app service, scaled with --scale app=N');
    for (const [name, s] of apps) {
      const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, withDefaults(String(v))]));
      const config = loadConfig(env);
      assert.equal(config.metrics.port, APP_METRICS_PORT, `${name}: METRICS_PORT is scripts/compose/compose.ts's APP_METRICS_PORT`);
      assert.notEqual(config.metrics.port, config.port, `${name}: not on the public port`);
    }
    const prometheus = parse(readFileSync(join(COMPOSE_DIR, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; dns_sd_configs: { names: string[]; port: number }[] }[];
    };
    const targets = prometheus.scrape_configs.flatMap((c) => c.dns_sd_configs.flatMap((t) => t.names.map((n) => `${n}:${t.port}`)));
    assert.deepEqual(targets, [`app:${APP_METRICS_PORT}`]);
    // The load balancer's servers are the public ports only.
    const cfg = readFileSync(join(COMPOSE_DIR, 'haproxy.cfg'), 'utf8');
    const servers = [...cfg.matchAll(/^\s*server-template \S+ \S+ (\S+)/gm)].map((m) => m[1] as string);
    assert.deepEqual(servers, ['app:8000', 'app-unready:8000'], 'the load balancer routes to the public port only');
    assert.doesNotMatch(cfg, new RegExp(`:${APP_METRICS_PORT}\\b`), 'the load balancer never names the metrics port');
  });

  it('scale: app replicas without a host port of their own behind a load balancer that finds them by DNS, checks readiness faster than the apps stop, and retries only what was not carried out', () => {
    const app = services['app'] as Service;
    assert.equal(app.ports, undefined, 'a second replica would fight for a host port: the load balancer is the way in');
    assert.deepEqual(services['lb']?.depends_on, { app: { condition: 'service_healthy' } });
    assert.deepEqual(
      (services['lb']?.ports ?? []).map((p) => withDefaults(p)),
      ['127.0.0.1:8000:8000', '127.0.0.1:8404:8404'],
      'the load balancer publishes the app port and its stats',
    );
    // Only the load balancer appends to X-Forwarded-For: the app trusts that one hop.
    assert.equal(withDefaults(String(app.environment?.['TRUST_PROXY'])), '1');
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
    assert.match(cfg, /^\s*nameserver \S+ 127\.0\.0\.11:53$/m, "Docker's DNS");
    const [, count, inter, fall] = /^\s*server-template app 1-(\d+) app:8000 check inter (\d+)s fall (\d+)/m.exec(cfg) ?? [];
    assert.ok(Number(count) >= 5, `room for --scale app=5 (${count})`);
    assert.ok(
      Number(inter) * 1000 * Number(fall) * 2 <= delayMs,
      `the load balancer notices a stopping app (inter ${inter}s x fall ${fall}) well inside SHUTDOWN_DELAY_MS ${delayMs}`,
    );
    // The same replicas under a second name, unchecked backups, used only when none is ready: the
    // app's own answers, never the balancer's 503.
    assert.match(cfg, new RegExp(`^\\s*server-template unready 1-${count} app-unready:8000 backup$`, 'm'));
    assert.match(cfg, /^\s*option allbackups$/m);
    assert.deepEqual((app as Service & { networks?: unknown }).networks, { ha: { aliases: ['app-unready'] } });
    const retryOn = /^\s*retry-on (.+)$/m.exec(cfg)?.[1]?.split(/\s+/) ?? [];
    assert.ok(retryOn.includes('503') && retryOn.includes('conn-failure'), retryOn.join(' '));
    assert.ok(
      !retryOn.includes('response-timeout') && !retryOn.includes('all-retryable-errors'),
      'a request that may have been carried out is never sent twice',
    );
  });

  it("the fault drill's policies file is the example's and its own fleet_ policies, valid", () => {
    const read = (name: string) =>
      JSON.parse(readFileSync(join(ROOT, 'config', name), 'utf8')) as {
        policies: Record<string, unknown>;
        surfaces: { surfaceId: string; path: string }[];
      };
    const example = read('policies.example.json');
    const fleet = read('policies.fleet.json');
    const own = Object.keys(fleet.policies).filter((k) => !(k in example.policies));
    assert.deepEqual(own, ['fleet_window', 'fleet_quota', 'fleet_bucket', 'fleet_open']);
    for (const [k, v] of Object.entries(example.policies)) assert.deepEqual(fleet.policies[k], v, k);
    assert.deepEqual(
      fleet.surfaces.filter((x) => !x.surfaceId.startsWith('fleet-')),
      example.surfaces,
      "the example's surfaces, in order, after the drill's own",
    );
    assert.ok(fleet.surfaces.filter((x) => x.surfaceId.startsWith('fleet-')).every((x) => x.path.startsWith('/v1/fleet/')));
    const loaded = loadPolicyFile(join(ROOT, 'config', 'policies.fleet.json'), defaultPolicies(5, 10));
    assert.equal(loaded.surfaces?.length, fleet.surfaces.length);
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
