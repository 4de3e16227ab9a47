// `npm run compose:up|down|smoke [-- <profile> [replicas]]`: the compose environment, started for
// real. Works with `docker compose` (v2) or `docker-compose` (v1), whichever is there. `up` builds
// the stand-in images a host without a registry needs (scripts/compose/standins.sh), starts the
// profile's Redis topology first and waits for it to be healthy, then the rest with `--scale
// app=N`, and waits until the load balancer has every replica in rotation. `smoke` runs each
// profile (default with five replicas and Prometheus, sentinel, cluster) with its matching
// REDIS_URL and checks it through the ports published on 127.0.0.1, then takes it down and
// checks every replica drained.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { waitUntil } from '../wait';

const ROOT = join(__dirname, '..', '..');
const FILE = join(ROOT, 'compose', 'docker-compose.yml');
const PROJECT = 'rampart';
type Profile = 'default' | 'sentinel' | 'cluster';

/** The REDIS_URL each profile's app must use, and the services of its Redis topology. */
const TOPOLOGY: Readonly<Record<Profile, { url: string; services: readonly string[]; scheme: string }>> = {
  default: { url: 'redis://limiter:limiter@redis:6379', services: ['redis'], scheme: 'redis:' },
  sentinel: {
    url: 'redis+sentinel://limiter:limiter@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/mymaster',
    services: ['redis-master', 'redis-replica-1', 'redis-replica-2', 'sentinel-1', 'sentinel-2', 'sentinel-3'],
    scheme: 'redis+sentinel:',
  },
  cluster: {
    url: 'redis+cluster://limiter:limiter@redis-node-1:6379,redis-node-2:6379,redis-node-3:6379',
    services: ['redis-node-1', 'redis-node-2', 'redis-node-3', 'redis-node-4', 'redis-node-5', 'redis-node-6', 'redis-cluster-init'],
    scheme: 'redis+cluster:',
  },
};
/** The profiles `smoke` runs when none is named, each with its number of app replicas. */
const SMOKE_RUNS: readonly { profile: Profile; replicas: number }[] = [
  { profile: 'default', replicas: 5 },
  { profile: 'sentinel', replicas: 1 },
  { profile: 'cluster', replicas: 1 },
];
/** The load balancer in front of the app replicas: the only way in. */
const APP = 'http://127.0.0.1:8000';
/**
 * The app services' METRICS_PORT in compose/docker-compose.yml (test/unit/repository/compose.test.ts checks
 * they agree): /metrics is there, on the compose network only, not on APP.
 */
const APP_METRICS_PORT = 9464;
const LB = APP;
const LB_STATS = 'http://127.0.0.1:8404/stats;csv';
const OTLP_UI = 'http://127.0.0.1:16686';
const PROMETHEUS = 'http://127.0.0.1:19090';
const GRAFANA = 'http://127.0.0.1:13000';

const log = (msg: string) => process.stdout.write(`[compose] ${msg}\n`);

function composeBinary(): string[] {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  throw new Error('neither `docker compose` nor `docker-compose` is installed');
}

/** Beside a topology's profile: the observability profile, or the network fault drill's proxy. */
type Extra = 'observability' | 'faults';

/**
 * The variables a compose file (by default ours) reads: `$NAME`, `${NAME}` and `${NAME` with a
 * `-`, `:-`, `?`, `:?`, `+` or `:+` clause `}`, in its parsed keys and values (so no comment,
 * inline or not, counts), and not `$$NAME` (a literal `$`).
 */
function variablesRead(text = readFileSync(FILE, 'utf8')): Set<string> {
  const names = new Set<string>();
  const visit = (v: unknown): void => {
    if (typeof v === 'string')
      for (const m of v.matchAll(/\$(\$)|\$(?:\{([A-Za-z_]\w*)(?::?[-?+][^}]*)?\}|([A-Za-z_]\w*))/g)) {
        const name = m[2] ?? m[3];
        if (name !== undefined) names.add(name);
      }
    else if (Array.isArray(v)) v.forEach(visit);
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        visit(k);
        visit(x);
      }
  };
  visit(parse(text));
  return names;
}

function compose(profile: Profile, args: readonly string[], env: Record<string, string> = {}, extras: readonly Extra[] = []): string {
  // A variable the compose file never reads would be dropped without a word, and a drill would
  // run the app on its default while saying otherwise.
  const read = variablesRead();
  const unread = Object.keys(env).filter((k) => !read.has(k));
  if (unread.length > 0) throw new Error(`${unread.join(', ')}: not read by ${FILE}; add them to the app's environment there`);
  const [bin, ...pre] = composeBinary() as [string, ...string[]];
  const profiles = [...(profile === 'default' ? [] : [profile]), ...extras].flatMap((p) => ['--profile', p]);
  return execFileSync(bin, [...pre, '-f', FILE, '-p', PROJECT, ...profiles, ...args], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: TOPOLOGY[profile].url, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Every container of a service (each replica of a scaled one), oldest first. */
function containersOf(service: string): string[] {
  return execFileSync(
    'docker',
    [
      'ps',
      '-a',
      '--filter',
      `label=com.docker.compose.project=${PROJECT}`,
      '--filter',
      `label=com.docker.compose.service=${service}`,
      '--format',
      '{{.CreatedAt}}\t{{.ID}}',
    ],
    { encoding: 'utf8' },
  )
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .sort()
    .map((l) => l.split('\t')[1] ?? '');
}

function containerOf(service: string): string {
  return containersOf(service)[0] ?? '';
}

function health(service: string): string {
  const id = containerOf(service);
  if (id === '') return 'missing';
  return execFileSync(
    'docker',
    [
      'inspect',
      '-f',
      '{{if eq .State.Status "running"}}{{if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}{{else}}{{.State.Status}} {{.State.ExitCode}}{{end}}',
      id,
    ],
    { encoding: 'utf8' },
  ).trim();
}

/**
 * Starts the profile with `replicas` app replicas behind the load balancer; `env` adds to the
 * app's environment (e.g. TRUST_PROXY for the drills); `extras` starts the fault drill's proxy
 * with the Redis topology.
 */
async function up(profile: Profile, env: Record<string, string> = {}, replicas = 1, extras: readonly Extra[] = []): Promise<void> {
  const url = process.env['REDIS_URL'];
  // The app must use the topology it was started with: a sentinel profile with the standalone
  // REDIS_URL would run an HA set nobody uses.
  if (url !== undefined && url !== '' && !url.startsWith(TOPOLOGY[profile].scheme)) {
    throw new Error(
      `REDIS_URL=${url.replace(/\/\/[^@/]*@/, '//***@')} does not match the ${profile} profile; use ${TOPOLOGY[profile].url} (or unset it)`,
    );
  }
  execFileSync('bash', [join(__dirname, 'standins.sh')], { stdio: 'inherit' });
  log(`${profile}: starting the Redis topology`);
  compose(profile, ['up', '-d', ...TOPOLOGY[profile].services, ...extras.filter((e) => e === 'faults')], env, extras);
  await waitUntil(
    `the ${profile} Redis topology`,
    async () => TOPOLOGY[profile].services.every((s) => (s === 'redis-cluster-init' ? health(s) === 'exited 0' : health(s) === 'healthy')),
    120_000,
    250,
  );
  log(`${profile}: starting Postgres, the OTLP endpoint, ${replicas} app replica(s) and the load balancer`);
  compose(
    profile,
    ['up', '-d', '--build', '--scale', `app=${replicas}`],
    env,
    extras.filter((e) => e !== 'observability'),
  );
  await waitUntil(
    'the app to be ready through the load balancer',
    async () => (await fetch(`${APP}/health/ready`, { signal: AbortSignal.timeout(2_000) })).status === 200,
    180_000,
    250,
  );
  await waitUntil(
    `the load balancer to have ${replicas} replica(s) in rotation`,
    async () => (await lbServers()).filter((s) => s.status === 'UP').length === replicas,
    60_000,
    250,
  );
}

/** A container's address on the compose network. */
function addressOf(id: string): string {
  return execFileSync('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id], {
    encoding: 'utf8',
  }).trim();
}

/** The load balancer's view of its app servers (HAProxy's stats CSV): the slots DNS filled, each a replica. */
async function lbServers(): Promise<{ name: string; status: string }[]> {
  const csv = await (await fetch(LB_STATS, { signal: AbortSignal.timeout(2_000) })).text();
  const [header = '', ...rows] = csv.replace(/^# /, '').trim().split('\n');
  const cols = header.split(',');
  const at = (row: string[], col: string) => row[cols.indexOf(col)] ?? '';
  return rows
    .map((r) => r.split(','))
    .filter((r) => at(r, 'pxname') === 'apps' && /^app\d+$/.test(at(r, 'svname')) && !at(r, 'status').startsWith('MAINT'))
    .map((r) => ({ name: at(r, 'svname'), status: at(r, 'status') }));
}

function down(): void {
  compose('default', ['down', '-v', '--remove-orphans'], {}, ['observability', 'faults']);
  for (const profile of ['cluster', 'sentinel', 'default'] as const) compose(profile, ['down', '-v', '--remove-orphans']);
}

/** Present, or pulled within 20 s. */
function imageAvailable(image: string): boolean {
  if (spawnSync('docker', ['image', 'inspect', image], { stdio: 'ignore' }).status === 0) return true;
  return spawnSync('timeout', ['20', 'docker', 'pull', '-q', image], { stdio: 'ignore' }).status === 0;
}

/**
 * The observability profile beside the running app replicas: Prometheus (a stand-in where the
 * upstream image cannot be pulled) scraping every replica with rampart's rules, and Grafana with
 * the provisioned dashboard where its image is there (it has no stand-in).
 */
async function observability(profile: Profile, replicas: number): Promise<void> {
  const grafanaImage = process.env['GRAFANA_IMAGE'] ?? 'grafana/grafana:11.2.0';
  const withGrafana = imageAvailable(grafanaImage);
  compose(profile, ['up', '-d', '--no-deps', 'prometheus', ...(withGrafana ? ['grafana'] : [])], {}, ['observability']);
  const targets = async () => {
    const body = (await json(await fetch(`${PROMETHEUS}/api/v1/targets`, { signal: AbortSignal.timeout(2_000) }))) as {
      data?: { activeTargets: { labels: { instance: string }; health: string }[] };
    };
    return (body.data?.activeTargets ?? []).filter((t) => t.health === 'up').map((t) => t.labels.instance);
  };
  await waitUntil('Prometheus to scrape every replica', async () => (await targets()).length === replicas, 90_000, 1_000);
  // Found through Docker's DNS: each replica's address, on its metrics port.
  const scraped = (await targets()).sort();
  const addresses = containersOf('app')
    .map((id) => `${addressOf(id)}:${APP_METRICS_PORT}`)
    .sort();
  check(
    scraped.join(',') === addresses.join(','),
    `Prometheus found and scrapes the ${replicas} replicas: ${scraped.join(', ')} (their metrics ports)`,
  );
  const rules = (await json(await fetch(`${PROMETHEUS}/api/v1/rules`))) as {
    data: { groups: { name: string; rules: { health: string; type: string }[] }[] };
  };
  const loaded = rules.data.groups.flatMap((g) => g.rules);
  check(
    loaded.length > 0 && loaded.every((r) => r.health !== 'err') && loaded.some((r) => r.type === 'alerting'),
    `Prometheus loaded rampart's rules (${loaded.filter((r) => r.type === 'alerting').length} alerts, ${loaded.filter((r) => r.type === 'recording').length} recording rules)`,
  );
  if (!withGrafana) {
    log(
      `  --  ${grafanaImage} is neither present nor pullable here: Grafana not started (its dashboard is checked through its queries by test/tools/prometheus.test.ts)`,
    );
    return;
  }
  await waitUntil(
    'Grafana to answer',
    async () => (await fetch(`${GRAFANA}/api/health`, { signal: AbortSignal.timeout(2_000) })).status === 200,
    90_000,
    1_000,
  );
  const found = (await (await fetch(`${GRAFANA}/api/search?query=rampart`)).json()) as { uid: string }[];
  check(
    found.some((d) => d.uid === 'rampart'),
    'Grafana provisioned the rampart dashboard',
  );
}

/** `docker` arguments that print the status and body of the app's /metrics, fetched inside its container. */
function metricsInsideCommand(container: string): string[] {
  const script = `fetch('http://127.0.0.1:${APP_METRICS_PORT}/metrics').then(async (r) => process.stdout.write(r.status + '\\n' + (await r.text())))`;
  return ['exec', container, 'node', '-e', script];
}

/** `docker` arguments that print the replica's transaction count in the app database (reads there move it). */
function replicaXactsCommand(container: string): string[] {
  const sql = "select xact_commit + xact_rollback from pg_stat_database where datname = 'app'";
  return ['exec', container, 'psql', '-U', 'postgres', '-d', 'app', '-tAc', sql];
}

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

function check(ok: boolean, what: string, detail?: unknown): void {
  if (!ok) throw new Error(`smoke: ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  log(`  ok  ${what}`);
}

async function smoke(profile: Profile, replicas: number): Promise<void> {
  const started = Date.now();
  await up(profile, {}, replicas);
  const ready = await json(await fetch(`${APP}/health/ready`));
  check(ready['db'] === 'connected' && ready['redis'] === 'connected', 'readiness: db and redis connected', ready);
  // Metrics: our 404 on the published port; served on the metrics port, which only the compose
  // network reaches (read from inside the container).
  const hidden = await fetch(`${APP}/metrics`);
  const hiddenBody = await json(hidden);
  check(hidden.status === 404 && hiddenBody['error'] === 'NOT_FOUND', '/metrics on the public port: 404 NOT_FOUND', hiddenBody);
  const inside = execFileSync('docker', metricsInsideCommand(containerOf('app')), { encoding: 'utf8', maxBuffer: 1 << 26 });
  check(
    inside.startsWith('200\n') && /^rampart_shutdown_limit_seconds /m.test(inside),
    `/metrics on the metrics port ${APP_METRICS_PORT}: 200 with rampart's metrics`,
    inside.slice(0, 200),
  );
  {
    // Every replica takes traffic through the load balancer: the answers per replica address.
    const perReplica: Record<string, number> = {};
    for (let i = 0; i < 20 * replicas; i++) {
      const address = String((await fetch(`${LB}/health/live`)).headers.get('x-served-by-address'));
      perReplica[address] = (perReplica[address] ?? 0) + 1;
    }
    const counts = Object.entries(perReplica)
      .sort()
      .map(([a, n]) => `${a}: ${n}`)
      .join(', ');
    check(Object.keys(perReplica).length === replicas, `the load balancer spreads requests over the ${replicas} replica(s) (${counts})`);
  }
  if (replicas > 1) await observability(profile, replicas);

  const username = `smoke${Date.now().toString(36)}`;
  const creds = { username, password: 'smoke-password-1' };
  const post = (path: string, body: unknown, token?: string) =>
    fetch(`${APP}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body),
    });
  check((await post('/v1/auth/register', creds)).status === 201, 'register 201');
  const login = await post('/v1/auth/login', creds);
  const token = String((await json(login))['token']);
  check(login.status === 200 && token.length > 20, 'login 200 with a token');
  const auth = { authorization: `Bearer ${token}` };
  const created = await post('/v1/notes', { title: 'smoke', body: 'through the primary' }, token);
  const note = await json(created);
  check(created.status === 201, 'note created (primary)', note);

  // Reads go to the replica: its transaction count moves, and the note is there once replicated.
  const replicaXacts = () => Number(execFileSync('docker', replicaXactsCommand(containerOf('pg-replica')), { encoding: 'utf8' }).trim());
  const before = replicaXacts();
  let listed: Record<string, unknown> = {};
  await waitUntil(
    'the note to be read back',
    async () => {
      listed = await json(await fetch(`${APP}/v1/notes`, { headers: auth }));
      return Array.isArray(listed['notes']) && (listed['notes'] as { id: string }[]).some((n) => n.id === note['id']);
    },
    10_000,
    250,
  );
  check(replicaXacts() > before, 'notes read through the replica (its transaction count moved)');
  const put = await fetch(`${APP}/v1/notes/${String(note['id'])}`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'smoke 2', body: 'x' }),
  });
  check(put.status === 200, 'note updated');
  check((await fetch(`${APP}/v1/notes/${String(note['id'])}`, { method: 'DELETE', headers: auth })).status === 204, 'note deleted');

  // The public policy of config/policies.example.json: drain it, then our 429.
  // 20 at a time: its bucket (burst 100) refills at 50/s, faster than one request after another
  // through the load balancer drains it on a busy VM.
  let limited: Response | undefined;
  for (let i = 0; i < 50 && limited === undefined; i++) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => fetch(`${APP}/v1/status`)));
    limited = batch.find((res) => res.status === 429);
    await Promise.all(batch.filter((res) => res !== limited).map((res) => res.arrayBuffer()));
  }
  const body = limited === undefined ? {} : await json(limited);
  check(
    limited !== undefined &&
      body['error'] === 'RATE_LIMITED' &&
      Number(limited.headers.get('retry-after')) >= 1 &&
      /"public";r=0;/.test(String(limited.headers.get('ratelimit'))),
    '429 RATE_LIMITED with Retry-After and RateLimit',
    body,
  );

  {
    // A caller's own X-Forwarded-For is not its identity: the load balancer appends the address it
    // saw and the app trusts that one proxy (TRUST_PROXY=1). The host's bucket of the public
    // policy (5/s, burst 10) drained, a request naming another address is refused all the same.
    let drained = false;
    for (let i = 0; i < 60 && !drained; i++) drained = (await fetch(`${APP}/v1/slow?ms=0`)).status === 429;
    const spoofed = await fetch(`${APP}/v1/slow?ms=0`, { headers: { 'x-forwarded-for': '1.2.3.4' } });
    check(
      drained && spoofed.status === 429,
      "X-Forwarded-For: 1.2.3.4 from the host is counted in the host's own bucket (429), not a fresh one",
    );
  }

  {
    // The key the limiter wrote, read as the limiter's own ACL user (GET is in its rights), on
    // the profile's master (on Cluster, following MOVED); and the default user is off there.
    const node = profile === 'sentinel' ? 'redis-master' : profile === 'cluster' ? 'redis-node-1' : 'redis';
    const cli = (...args: string[]) =>
      execFileSync('docker', ['exec', containerOf(node), 'redis-cli', ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    const gateway = execFileSync('docker', ['network', 'inspect', `${PROJECT}_ha`, '-f', '{{(index .IPAM.Config 0).Gateway}}'], {
      encoding: 'utf8',
    }).trim();
    // /v1/status overrides the public bucket's numbers (policies.example.json): its own key.
    const key = `rl:public@status:{i:${gateway}}`;
    const tat = cli(...(profile === 'cluster' ? ['-c'] : []), '--user', 'limiter', '--pass', 'limiter', '--no-auth-warning', 'GET', key);
    check(/^\d{16,}$/.test(tat), `RateLimit key ${key} in Redis, read as the limiter's ACL user (TAT ${tat} µs)`);
    check(/NOAUTH/.test(cli('PING')), `${node}: the default user is off (PING without a user: NOAUTH)`);
    const cliGet = (k: string) =>
      cli(...(profile === 'cluster' ? ['-c'] : []), '--user', 'limiter', '--pass', 'limiter', '--no-auth-warning', 'GET', k);
    // A caller's own X-Forwarded-For is not its identity (the spoofing check above): no bucket of its own.
    check(
      cliGet('rl:public:{i:1.2.3.4}') === '',
      `no key rl:public:{i:1.2.3.4}: the X-Forwarded-For a caller wrote was never anyone's identity`,
    );
  }

  await waitUntil(
    'spans at the OTLP endpoint',
    async () => {
      const received = await json(await fetch(`${OTLP_UI}/api/received`));
      return (received['exports'] as number) > 0 && (received['services'] as string[]).includes('rampart-sample');
    },
    20_000,
    250,
  );
  check(true, 'spans of rampart-sample received by the OTLP endpoint');

  // Drain: every replica stops on SIGTERM within its grace period, logs its report, exits 0.
  const apps = containersOf('app');
  compose(profile, ['stop', 'app']);
  for (const [i, id] of apps.entries()) {
    const logs = execFileSync('docker', ['logs', id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 });
    const report = logs.split('\n').find((l) => l.includes('"msg":"shutdown complete"')) ?? '';
    const state = execFileSync('docker', ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', id], { encoding: 'utf8' }).trim();
    check(
      report.includes('"exitCode":0') && state === 'exited 0',
      `app replica ${i + 1} stopped: shutdown complete, exit 0`,
      report.slice(0, 300),
    );
  }
  compose(profile, ['down', '-v', '--remove-orphans'], {}, ['observability']);
  log(`${profile} (${replicas} replica(s)): smoke passed in ${Math.round((Date.now() - started) / 1000)} s`);
}

async function main(): Promise<void> {
  // A fetch to a published port whose container is not listening yet can stall on a socket
  // that holds no reference on the event loop: keep the process alive until main settles.
  const keepAlive = setInterval(() => undefined, 1_000);
  try {
    await run();
  } finally {
    clearInterval(keepAlive);
  }
}

async function run(): Promise<void> {
  const [command, arg, count] = process.argv.slice(2);
  const replicas = count === undefined ? undefined : Number(count);
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 10))
    throw new Error(`replicas: ${count} is not an integer from 1 to 10 (the load balancer's server slots, compose/haproxy.cfg)`);
  const runs = arg === undefined ? [...SMOKE_RUNS] : [{ profile: arg as Profile, replicas: replicas ?? 1 }];
  for (const { profile: p } of runs) if (!(p in TOPOLOGY)) throw new Error(`unknown profile ${p}: ${Object.keys(TOPOLOGY).join(', ')}`);
  if (command === 'up') await up(runs[0]?.profile ?? 'default', {}, runs[0]?.replicas ?? 1);
  else if (command === 'down') down();
  else if (command === 'lint') {
    // The file as either compose reads it, with each profile (static: no engine needed).
    compose('default', ['config', '-q']);
    compose('default', ['--profile', 'sentinel', '--profile', 'cluster', 'config', '-q'], {}, ['observability', 'faults']);
  } else if (command === 'smoke') {
    try {
      for (const r of runs) await smoke(r.profile, r.replicas);
    } finally {
      down();
    }
  } else throw new Error(`usage: compose.ts up|down|smoke|lint [${Object.keys(TOPOLOGY).join('|')} [replicas]]`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`[compose] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}

export {
  APP,
  APP_METRICS_PORT,
  LB,
  compose,
  variablesRead,
  containerOf,
  containersOf,
  down,
  health,
  lbServers,
  replicaXactsCommand,
  up,
  type Profile,
};
