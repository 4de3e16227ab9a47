// The package as a consumer receives it: `npm pack` (which builds through `prepare`), the
// tarball installed into a fresh project with its own express (5, and 4 in a second project),
// ioredis and TypeScript, the
// README's "Using it in your app" block compiled as it stands (strict; `module: node16` and
// `bundler`) and run against a real Redis; the package imported from ESM and from CJS; the
// tracing preload run there, with a sample-API-hostile environment, exporting to a local OTLP
// receiver. Needs the npm registry (or its cache) for the consumer's own dependencies.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { waitUntil } from '../../scripts/wait';
import { command } from '../../scripts/redis-stack';
import { makePki, type TestPki } from '../support/tls';
import { startTlsCluster, startTlsSentinel } from '../support/tls-stacks';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { freePort, startRedisServer, type RedisProcess } from '../support/redis-server';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
};

/** The tracing entry's packages: optional peers, installed only by those who trace. */
const TRACING = Object.keys(pkg.peerDependencies).filter((n) => pkg.peerDependenciesMeta[n]?.optional === true);

/** The version this repository runs, so the consumer's install comes from the same cache. */
const installed = (name: string) =>
  (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** The README block under "Using it in your app", as it stands. */
export function readmeSnippet(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using it in your app'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (m?.[1] === undefined) throw new Error('README has no ts block under "Using it in your app"');
  return m[1];
}

/** The ts block after `<!-- example: NAME -->` in docs/redis.md, as it stands. */
export function docsExample(name: string): string {
  const doc = readFileSync(join(ROOT, 'docs', 'redis.md'), 'utf8');
  const at = doc.indexOf(`<!-- example: ${name} -->`);
  const m = /```ts\n([\s\S]*?)```/.exec(doc.slice(at));
  if (at === -1 || m?.[1] === undefined) throw new Error(`docs/redis.md has no ts block after <!-- example: ${name} -->`);
  return m[1];
}

/** Packages and megabytes under `dir/node_modules`. */
function installSize(dir: string): { packages: number; mb: number } {
  let packages = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isSymbolicLink()) continue;
      if (entry.isDirectory()) walk(p);
      else {
        bytes += statSync(p).size;
        if (entry.name === 'package.json' && /node_modules[\\/](@[^\\/]+[\\/])?[^\\/@]+$/.test(d)) packages++;
      }
    }
  };
  walk(join(dir, 'node_modules'));
  return { packages, mb: Math.round((bytes / 1e6) * 10) / 10 };
}

async function npm(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  return stdout;
}

interface Child {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function startNode(cwd: string, args: readonly string[], env: Record<string, string>): Child {
  // Only what a shell would pass, plus the test's variables: nothing of this repository's env.
  const base: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '' };
  const child = spawn(process.execPath, args, { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

describe('the package as a consumer installs it (npm pack -> fresh project)', function () {
  this.timeout(600_000);
  let work: string;
  let consumer: string;
  /** The same consumer on Express 4 (and its types). */
  let consumer4: string;
  const EXPRESS_4 = '^4.17.0';
  let tarball: string;
  let redis: RedisProcess;
  let admin: Redis;
  const sizes: Record<string, { packages: number; mb: number }> = {};

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'rampart-consumer-'));
    const packed = JSON.parse(await npm(ROOT, 'pack', '--json', '--pack-destination', work)) as {
      filename: string;
      files: { path: string }[];
    }[];
    const info = packed[0];
    assert.ok(info !== undefined);
    tarball = join(work, info.filename);
    const files = info.files.map((f) => f.path);
    console.log(
      `      npm pack: ${files.length} files, e.g. ${files
        .filter((f) => f.endsWith('index.js'))
        .slice(0, 4)
        .join(', ')}`,
    );
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), 'the tarball holds the built code and its types');
    assert.ok(files.includes('dist/entries/tracing-register.js'));
    assert.deepEqual(
      files.filter((f) => f.startsWith('dist/app/') || f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map')),
      [],
      'and nothing of the sample API, the sources or the tests',
    );

    // What an install weighs, in a project of its own: the library alone, then with tracing.
    const measured = join(work, 'measured');
    mkdirSync(measured);
    writeFileSync(join(measured, 'package.json'), JSON.stringify({ name: 'measured', version: '1.0.0', private: true }, null, 2));
    await npm(measured, 'install', tarball, `express@${installed('express')}`, `ioredis@${installed('ioredis')}`);
    sizes['core (rampart, express, ioredis)'] = installSize(measured);
    await npm(measured, 'install', ...TRACING.map((n) => `${n}@${installed(n)}`));
    sizes['core + tracing'] = installSize(measured);
    console.log(`      consumer install: ${JSON.stringify(sizes)}`);

    // The consumer: the library without tracing, and TypeScript (tracing is added by its test).
    consumer = join(work, 'consumer');
    mkdirSync(consumer);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2));
    await npm(consumer, 'install', tarball, `express@${installed('express')}`, `ioredis@${installed('ioredis')}`);
    await npm(
      consumer,
      'install',
      `typescript@${installed('typescript')}`,
      `@types/express@${installed('@types/express')}`,
      `@types/node@${installed('@types/node')}`,
    );

    // An Express 4 application: npm refuses the install if the peer range leaves Express 4 out.
    consumer4 = join(work, 'consumer-express4');
    mkdirSync(consumer4);
    writeFileSync(join(consumer4, 'package.json'), JSON.stringify({ name: 'consumer-express4', version: '1.0.0', private: true }, null, 2));
    await npm(
      consumer4,
      'install',
      tarball,
      `express@${EXPRESS_4}`,
      `ioredis@${installed('ioredis')}`,
      `typescript@${installed('typescript')}`,
      '@types/express@^4.17.0',
      `@types/node@${installed('@types/node')}`,
      // The client an app may already have instead of ioredis (docs/redis.md, "Your own client").
      `redis@${installed('redis')}`,
      `iovalkey@${installed('iovalkey')}`,
    );
    const express4 = (JSON.parse(readFileSync(join(consumer4, 'node_modules', 'express', 'package.json'), 'utf8')) as { version: string })
      .version;
    console.log(`      the Express 4 consumer: express ${express4}`);
    assert.match(express4, /^4\./);

    redis = await startRedisServer();
    admin = new Redis(redis.port, '127.0.0.1');
  });
  /** The consumer projects: Express 5 and Express 4. */
  const projects = () => [
    { label: 'Express 5', dir: consumer },
    { label: 'Express 4', dir: consumer4 },
  ];
  after(async () => {
    admin?.disconnect();
    await redis?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('installs without the sample API: no pg, PGlite, pino or OpenTelemetry SDK in a core install', () => {
    const lock = JSON.parse(readFileSync(join(consumer, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { peer?: boolean; optional?: boolean; dev?: boolean }>;
    };
    const rampartDeps = Object.keys(lock.packages).filter((p) => p.startsWith('node_modules/'));
    for (const name of ['pg', '@electric-sql/pglite', 'pino', 'pino-http', '@opentelemetry/sdk-node'])
      assert.ok(!rampartDeps.includes(`node_modules/${name}`), `${name} is not installed`);
    assert.ok((sizes['core (rampart, express, ioredis)']?.mb ?? Infinity) < 20, JSON.stringify(sizes));
  });

  it('ships the rampart command: npx rampart check-policies FILE checks a file offline (0 when valid, 1 with each mistake and its place)', async () => {
    const good = join(consumer, 'good.json');
    const bad = join(consumer, 'bad.json');
    writeFileSync(good, readFileSync(join(ROOT, 'config', 'policies.example.json')));
    writeFileSync(
      bad,
      JSON.stringify({
        policies: { x: { algorithm: 'token_bucket', rps: 0, burst: 1 } },
        surfaces: [
          { surfaceId: 's', path: '/', policies: ['y'] },
          { surfaceId: 'rest', path: '/*', policies: ['y'] },
        ],
      }),
    );
    const ok = await run('npx', ['--no-install', 'rampart', 'check-policies', good], { cwd: consumer });
    assert.match(ok.stdout, /good\.json: ok \(6 policies with the defaults, 10 surfaces\)/);
    await assert.rejects(
      run('npx', ['--no-install', 'rampart', 'check-policies', bad], { cwd: consumer }),
      (err: Error & { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1);
        assert.match(String(err.stderr), /bad\.json: policies\.x\.rps: /);
        return true;
      },
    );
  });

  for (const resolution of ['node16', 'bundler'] as const) {
    it(`compiles the README's block as it stands (strict, moduleResolution ${resolution}, no skipLibCheck), on Express 5 and 4`, async () => {
      for (const project of projects()) await compileReadme(project.dir, resolution, project.label);
    });
  }

  async function compileReadme(consumer: string, resolution: 'node16' | 'bundler', label: string): Promise<void> {
    const dir = join(consumer, `ts-${resolution}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'app.ts'), readmeSnippet());
    const compilerOptions =
      resolution === 'node16'
        ? { module: 'node16', moduleResolution: 'node16', outDir: 'out' }
        : { module: 'esnext', moduleResolution: 'bundler', noEmit: true };
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: { ...compilerOptions, target: 'es2022', strict: true, skipLibCheck: false, types: ['node'] },
          files: ['app.ts'],
        },
        null,
        2,
      ),
    );
    try {
      await run(process.execPath, [join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      assert.fail(`tsc (${resolution}, ${label}) failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }

  it('runs the README block against Redis: 200s, then 429 in our JSON with the RateLimit fields, keys in Redis (Express 5 and 4)', async () => {
    for (const project of projects()) await runReadme(project.dir, project.label);
  });

  it('ships the operator commands: npx rampart block, peek and reset act on Redis (REDIS_URL) from the installed package', async () => {
    const policies = join(consumer, 'guarded.json');
    writeFileSync(
      policies,
      JSON.stringify({
        policies: {
          guarded: {
            algorithm: 'sliding_window',
            limit: 2,
            windowSeconds: 60,
            key: 'ip',
            penalty: { denials: 1, withinSeconds: 60, blockSeconds: 600 },
          },
        },
      }),
    );
    const env = { ...process.env, REDIS_URL: redis.url, RATE_LIMIT_POLICIES_FILE: policies };
    const rampart = (...args: string[]) =>
      run('npx', ['--no-install', 'rampart', ...args, '--policy', 'guarded', '--identity', '198.51.100.23'], { cwd: consumer, env });
    const blocked = await rampart('block', '--seconds', '60');
    assert.match(blocked.stdout, /^blocked: rl:guarded:\{i:198\.51\.100\.23\} for 60 s/);
    const seen = JSON.parse((await rampart('peek')).stdout) as { blocked: boolean; remaining: number };
    assert.deepEqual([seen.blocked, seen.remaining], [true, 0]);
    assert.match((await rampart('reset')).stdout, /^reset: /);
    const after = JSON.parse((await rampart('peek')).stdout) as { blocked: boolean; remaining: number; allowed: boolean };
    assert.deepEqual([after.blocked, after.remaining, after.allowed], [false, 2, true]);
  });

  /** docs/redis.md's `name` example, compiled strict (node16) in the Express 4 project: its directory. */
  async function compileExample(name: string): Promise<string> {
    const dir = join(consumer4, `own-${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'app.ts'), docsExample(name));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          outDir: 'out',
          target: 'es2022',
          strict: true,
          skipLibCheck: false,
          types: ['node'],
        },
        files: ['app.ts'],
      }),
    );
    try {
      await run(process.execPath, [join(consumer4, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      assert.fail(`tsc (${name}) failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
    return dir;
  }

  for (const name of ['node-redis', 'iovalkey']) {
    it(`runs docs/redis.md's ${name} example in the Express 4 project: compiled strict, then 10 x 200 with RateLimit, 429, keys in Redis`, async () => {
      const dir = await compileExample(name);
      await admin.flushdb();
      const port = await freePort();
      const app = startNode(dir, ['out/app.js'], { PORT: String(port), REDIS_URL: redis.url });
      try {
        const base = `http://127.0.0.1:${port}`;
        await waitUntil(`the ${name} app to answer`, async () => (await fetch(`${base}/nothing`)).status === 404, 20_000, 50);
        const statuses: number[] = [];
        for (let i = 0; i < 11; i++) {
          const res = await fetch(`${base}/things`);
          statuses.push(res.status);
          if (i < 10) assert.match(String(res.headers.get('ratelimit')), /^"public";r=\d+;t=\d+$/);
          else assert.equal(((await res.json()) as { error: string }).error, 'RATE_LIMITED');
        }
        assert.deepEqual(statuses, [...Array<number>(10).fill(200), 429]);
        assert.ok((await admin.keys('rl:public:*')).length === 1, 'the bucket is in Redis');
      } catch (err) {
        throw new Error(`${name}: ${(err as Error).message}\napp output:\n${app.output()}`, { cause: err });
      } finally {
        await app.stop();
      }
    });
  }

  /**
   * Runs a TLS example app until it limits, kills the master holding its bucket (`kill`, which
   * resolves once the replica says it is master), then asks every 20 ms until a request is
   * decided again (200 or 429 with the RateLimit fields, not the fail mode's 503).
   */
  async function limitsThroughFailover(
    name: string,
    env: Record<string, string>,
    kill: () => Promise<{ promotedAt: number }>,
  ): Promise<void> {
    const dir = await compileExample(name);
    const port = await freePort();
    const app = startNode(dir, ['out/app.js'], { PORT: String(port), ...env });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitUntil(`the ${name} app to answer`, async () => (await fetch(`${base}/nothing`)).status === 404, 30_000, 50);
      const statuses: number[] = [];
      for (let i = 0; i < 11; i++) {
        const res = await fetch(`${base}/things`);
        statuses.push(res.status);
        assert.match(String(res.headers.get('ratelimit')), /^"public";r=\d+;t=\d+$/);
      }
      assert.deepEqual(statuses, [...Array<number>(10).fill(200), 429]);
      const { promotedAt } = await kill();
      let status = 0;
      await waitUntil(
        `${name}: a decision on the promoted replica`,
        async () => {
          const res = await fetch(`${base}/things`);
          status = res.status;
          return (status === 200 || status === 429) && res.headers.get('ratelimit') !== null;
        },
        30_000,
        20,
      );
      console.log(
        `      ${name}: deciding again ${Math.round(performance.now() - promotedAt)} ms after the promotion (answered ${status})`,
      );
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}\napp output:\n${app.output()}`, { cause: err });
    } finally {
      await app.stop();
    }
  }

  describe('on TLS topologies with client certificates, in the Express 4 project', () => {
    let pki: TestPki;
    before(() => {
      pki = makePki();
    });
    after(() => pki?.remove());
    const files = () => ({
      REDIS_TLS_CA_FILE: pki.files.ca,
      REDIS_TLS_CERT_FILE: pki.files.clientCert,
      REDIS_TLS_KEY_FILE: pki.files.clientKey,
    });

    it("docs/redis.md's node-redis TLS Cluster example limits, and decides again after the master holding its bucket is killed", async () => {
      const cluster = await startTlsCluster(pki);
      try {
        await limitsThroughFailover(
          'node-redis-tls-cluster',
          { ...files(), REDIS_NODES: [...cluster.tlsPort.values()].map((p) => `127.0.0.1:${p}`).join(',') },
          async () => {
            const key = await bucketKey(cluster.stack.nodes.map((n) => n.port));
            const master = await cluster.stack.masterOf(calculateSlot(key));
            const replica = await cluster.stack.replicaOf(master.port);
            await master.kill();
            const killedAt = performance.now();
            await waitUntil(
              'the replica promoted',
              async () => ((await command(replica.port, 'ROLE')) as string[])[0] === 'master',
              30_000,
              20,
            );
            console.log(
              `      node-redis-tls-cluster: ${key}'s master killed, its replica promoted ${Math.round(performance.now() - killedAt)} ms later`,
            );
            return { promotedAt: performance.now() };
          },
        );
      } finally {
        await cluster.stack.stop();
      }
    });

    it("docs/redis.md's iovalkey TLS Sentinel example limits, and decides again after its master is killed", async () => {
      const set = await startTlsSentinel(pki, 'consumer');
      try {
        await limitsThroughFailover(
          'iovalkey-tls-sentinel',
          { ...files(), REDIS_SENTINELS: `127.0.0.1:${set.tlsPort.get(set.sentinel.port)}`, REDIS_MASTER_NAME: set.masterName },
          async () => {
            // Replication is asynchronous: the bucket reaches the replica before the master dies.
            const offset = async (port: number) =>
              Number(/master_repl_offset:(\d+)/.exec(String(await command(port, 'INFO', 'replication')))?.[1] ?? -1);
            const written = await offset(set.master.port);
            await waitUntil('the replica has the bucket', async () => (await offset(set.replica.port)) >= written, 10_000, 20);
            await set.master.kill();
            const killedAt = performance.now();
            await waitUntil(
              'the replica promoted',
              async () => ((await command(set.replica.port, 'ROLE')) as string[])[0] === 'master',
              30_000,
              20,
            );
            console.log(
              `      iovalkey-tls-sentinel: master killed, the replica promoted ${Math.round(performance.now() - killedAt)} ms later`,
            );
            return { promotedAt: performance.now() };
          },
        );
      } finally {
        await set.stop();
      }
    });
  });

  /** The name of the one `rl:public:*` key, asked of the nodes on `ports` (plain ports). */
  async function bucketKey(ports: readonly number[]): Promise<string> {
    for (const port of ports) {
      const keys = (await command(port, 'KEYS', 'rl:public:*')) as string[];
      if (keys[0] !== undefined) return keys[0];
    }
    throw new Error('no rl:public:* key on any node');
  }

  async function runReadme(consumer: string, label: string): Promise<void> {
    // This test's own redis-server: each project starts from empty buckets.
    await admin.flushdb();
    const port = await freePort();
    const app = startNode(join(consumer, 'ts-node16'), ['out/app.js'], { PORT: String(port), REDIS_URL: redis.url });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitUntil('the README app to answer', async () => (await fetch(`${base}/health/live`)).status === 200, 20_000, 50);
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 11; i++) {
        last = await fetch(`${base}/things`);
        statuses.push(last.status);
        if (i < 10) assert.match(String(last.headers.get('ratelimit')), /^"public";r=\d+;t=\d+$/);
      }
      assert.deepEqual(statuses.slice(0, 10), Array<number>(10).fill(200), 'the burst of 10');
      assert.equal(statuses[10], 429);
      const body = (await last?.json()) as { error: string; policy: string; retry_after: number };
      assert.equal(body.error, 'RATE_LIMITED');
      assert.equal(body.policy, 'public');
      assert.ok(body.retry_after >= 1);
      assert.ok(Number(last?.headers.get('retry-after')) >= 1);
      assert.equal(last?.headers.get('ratelimit-policy'), '"public";q=10;w=2');
      const logins: number[] = [];
      for (let i = 0; i < 6; i++) {
        logins.push(
          (
            await fetch(`${base}/login`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ username: 'alice' }),
            })
          ).status,
        );
      }
      assert.deepEqual(logins, [200, 200, 200, 200, 200, 429]);
      const keys = (await admin.keys('rl:*')).sort();
      assert.ok(
        keys.some((k) => /^rl:public:\{i:(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)\}$/.test(k)),
        keys.join(' '),
      );
      assert.ok(
        keys.some((k) => /^rl:login_credential:\{c:[A-Za-z0-9_-]{22}\}$/.test(k)),
        keys.join(' '),
      );
      assert.ok(
        (await (await fetch(`${base}/metrics`)).text()).includes('rampart_rate_limit_decisions_total{policy="public",outcome="limited"} 1'),
      );
      // Malformed JSON on Express's own parser: 400 in our JSON shape, on either major.
      const malformed = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' });
      assert.equal(malformed.status, 400);
      assert.equal(((await malformed.json()) as { error: string }).error, 'BAD_REQUEST');
    } catch (err) {
      throw new Error(`${label}: ${(err as Error).message}\napp output:\n${app.output()}`, { cause: err });
    } finally {
      await app.stop();
    }
  }

  it('imports from ESM and from CommonJS (the same exports), and rampart/tracing once its packages are installed', async () => {
    await npm(consumer, 'install', ...TRACING.map((n) => `${n}@${installed(n)}`));
    writeFileSync(
      join(consumer, 'esm.mjs'),
      "import { createMemoryStore, createRateLimiter, ERROR_STATUS } from 'rampart';\n" +
        "import * as tracing from 'rampart/tracing';\n" +
        'const store = createMemoryStore();\n' +
        "const d = await store.decide([{ key: 'k', algorithm: 'token_bucket', intervalUs: 1000000, burst: 1, cost: 1 }]);\n" +
        'console.log(JSON.stringify({ esm: typeof createRateLimiter, allowed: d.allowed, status: ERROR_STATUS.RATE_LIMITED, tracing: typeof tracing.startTracing }));\n' +
        'await store.close();\n',
    );
    writeFileSync(
      join(consumer, 'cjs.cjs'),
      "const r = require('rampart');\n" +
        'console.log(JSON.stringify({ cjs: typeof r.createRateLimiter, status: r.ERROR_STATUS.RATE_LIMITED, exports: Object.keys(r).length }));\n',
    );
    const esm = JSON.parse((await run(process.execPath, ['esm.mjs'], { cwd: consumer })).stdout) as Record<string, unknown>;
    const cjs = JSON.parse((await run(process.execPath, ['cjs.cjs'], { cwd: consumer })).stdout) as Record<string, unknown>;
    assert.deepEqual(esm, { esm: 'function', allowed: true, status: 429, tracing: 'function' });
    assert.equal(cjs['cjs'], 'function');
    assert.equal(cjs['status'], 429);
    assert.ok((cjs['exports'] as number) > 30);
  });

  it("runs the tracing preload in the consumer's app with MODE=prod and no DATABASE_URL in the environment: spans arrive", async () => {
    const receiver: OtlpReceiver = await startOtlpReceiver();
    const port = await freePort();
    const app = startNode(join(consumer, 'ts-node16'), ['--require', 'rampart/tracing/register', 'out/app.js'], {
      PORT: String(port),
      REDIS_URL: redis.url,
      // The sample API's rules would refuse these; the preload must not care.
      MODE: 'prod',
      LOG_LEVEL: 'warning',
      TRACING_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'consumer-app',
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitUntil('the traced app to answer', async () => (await fetch(`${base}/health/live`)).status === 200, 20_000, 50);
      for (let i = 0; i < 3; i++) await fetch(`${base}/things`, { headers: { authorization: 'Bearer secret-token-canary' } });
      await waitUntil('spans at the OTLP receiver', async () => receiver.all().includes('consumer-app'), 15_000, 100);
      assert.ok(receiver.all().includes('/things'), 'the route span was exported');
      assert.ok(!receiver.all().includes('secret-token-canary'), 'and no secret');
    } catch (err) {
      throw new Error(`${(err as Error).message}\napp output:\n${app.output()}`);
    } finally {
      await app.stop();
      await receiver.close();
    }
  });
});
