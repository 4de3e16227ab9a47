import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { childEnv, waitForExit, type RunResult } from '../support/child';
import { buildPackage, installPackage, type Build, type Install } from '../support/installed-package';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { TRACING_PEER_PACKAGES } from '../../src/tracing';

// Not rampart's sample API: an application of its own, which knows nothing of MODE, LOG_LEVEL
// or DATABASE_URL, started the way the README says, `node --require rampart/tracing/register`.
// It flushes the tracing on SIGTERM so the test need not wait for the batch timer.
const APP = `
const http = require('node:http');
const server = http.createServer((req, res) => res.end('ok'));
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
process.on('SIGTERM', async () => {
  server.close();
  const tracing = require('rampart').activeTracing();
  process.stdout.write(JSON.stringify({ tracing: tracing !== undefined }) + '\\n');
  if (tracing !== undefined) await tracing.shutdown(5000).catch((err) => process.stderr.write('flush failed: ' + err.message + '\\n'));
  process.exit(0);
});
`;

interface Served {
  readonly result: RunResult;
  readonly status: number;
  /** Whether the app saw a started tracing (rampart's activeTracing()). */
  readonly traced: boolean;
}

/** Runs the app in `install` with `env`, sends one request, stops it with SIGTERM. */
async function serveOnce(install: Install, env: Record<string, string>): Promise<Served> {
  const child: ChildProcess = spawn(process.execPath, ['--require', 'rampart/tracing/register', 'app.js'], {
    cwd: install.dir,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = waitForExit(child, 30_000);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m?.[1] !== undefined) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`app exited with ${code} before listening`)));
  });
  const res = await request(`http://127.0.0.1:${port}`).get('/hello');
  child.kill('SIGTERM');
  const result = await exited;
  assert.equal(result.code, 0, result.stderr);
  return { result, status: res.status, traced: result.stdout.includes('{"tracing":true}') };
}

function stderrLines(result: RunResult): string[] {
  return result.stderr.split('\n').filter((l) => l !== '');
}

describe('the tracing preload in an application that is not the sample API', function () {
  this.timeout(120_000);
  let build: Build;
  let full: Install;
  let receiver: OtlpReceiver;

  before(() => {
    build = buildPackage();
    // pino is the sample API's logger, not rampart's: the preload must not need it.
    full = installPackage(build, ['pino', 'pino-http']);
    writeFileSync(join(full.dir, 'app.js'), APP);
  });
  beforeEach(async () => {
    receiver = await startOtlpReceiver();
  });
  afterEach(async () => {
    await receiver?.close();
  });
  after(() => {
    full?.remove();
    build?.remove();
  });

  const tracingEnv = (service: string) => ({
    TRACING_ENABLED: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_SERVICE_NAME: service,
  });

  // Each broke the sample API's rules, and the preload used to give up on them silently.
  const foreign: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ['MODE=prod and no DATABASE_URL', { MODE: 'prod' }],
    ['LOG_LEVEL=warning', { LOG_LEVEL: 'warning' }],
    ['MODE=production', { MODE: 'production' }],
    ['RATE_LIMIT_BACKEND=memcached and REDIS_URL=http://x', { RATE_LIMIT_BACKEND: 'memcached', REDIS_URL: 'http://x' }],
  ];
  for (const [what, env] of foreign) {
    it(`traces with ${what} in the environment (it reads only tracing variables), silently`, async () => {
      const service = `svc-${randomBytes(4).toString('hex')}`;
      const { result, status, traced } = await serveOnce(full, { ...env, ...tracingEnv(service) });
      assert.equal(status, 200);
      assert.equal(traced, true, 'the preload started tracing');
      assert.deepEqual(stderrLines(result), [], 'nothing on stderr');
      const bytes = receiver.all().toString();
      assert.ok(receiver.bodies.length > 0, 'spans arrived');
      assert.ok(bytes.includes(service), 'with the service name');
      assert.ok(bytes.includes('GET'), 'the request span');
    });
  }

  const invalid: ReadonlyArray<readonly [string, string]> = [
    ['OTEL_TRACES_SAMPLER_ARG', 'x'],
    ['OTEL_TRACES_SAMPLER', 'parentbased_traceidration'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'http'],
    ['OTEL_RESOURCE_ATTRIBUTES', 'novalue'],
    ['TRACING_ENABLED', 'on'],
  ];
  for (const [name, value] of invalid) {
    it(`${name}=${value}: one stderr line naming it and the fix; the app serves, untraced`, async () => {
      const service = `svc-${randomBytes(4).toString('hex')}`;
      const { result, status, traced } = await serveOnce(full, { ...tracingEnv(service), [name]: value });
      assert.equal(status, 200, 'the app still serves');
      assert.equal(traced, false);
      const lines = stderrLines(result);
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0] ?? '',
        new RegExp(
          `^rampart tracing: not started, the process runs without tracing: ${name}=.* is invalid: expected .*\\. Fix: set ${name} to a valid value`,
        ),
      );
      assert.equal(receiver.bodies.length, 0, 'no spans');
    });
  }

  it('says nothing about OTEL_* variables when tracing is off', async () => {
    const { result, status, traced } = await serveOnce(full, { OTEL_TRACES_SAMPLER_ARG: 'x', MODE: 'production' });
    assert.equal(status, 200);
    assert.equal(traced, false);
    assert.deepEqual(stderrLines(result), []);
  });

  it('warns once when OTEL_EXPORTER_OTLP_ENDPOINT is unset (it exports to the OTLP default)', async () => {
    const { result, traced } = await serveOnce(full, { TRACING_ENABLED: 'true', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    assert.equal(traced, true);
    // Exporting to a port where nothing listens may add the SDK's own export errors after it.
    const lines = stderrLines(result);
    assert.match(
      lines[0] ?? '',
      /^rampart tracing: OTEL_EXPORTER_OTLP_ENDPOINT is not set: exporting to http:\/\/localhost:4318, the OTLP default\. Fix: /,
      result.stderr,
    );
    assert.equal(lines.filter((l) => l.includes('is not set')).length, 1, result.stderr);
  });

  describe('without the optional OpenTelemetry packages', () => {
    let noSdk: Install;
    let none: Install;
    before(() => {
      noSdk = installPackage(build, ['pino', 'pino-http', '@opentelemetry/sdk-node']);
      writeFileSync(join(noSdk.dir, 'app.js'), APP);
      none = installPackage(build, ['pino', 'pino-http', ...TRACING_PEER_PACKAGES]);
    });
    after(() => {
      noSdk?.remove();
      none?.remove();
    });

    it('the preload names the missing package and the npm command in one stderr line; the app serves, untraced', async () => {
      const { result, status, traced } = await serveOnce(noSdk, tracingEnv('svc-missing'));
      assert.equal(status, 200);
      assert.equal(traced, false);
      const lines = stderrLines(result);
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0] ?? '',
        /^rampart tracing: not started, the process runs without tracing: rampart\/tracing needs @opentelemetry\/sdk-node, which is not installed \(.*\)\. Fix: npm install "?@opentelemetry\/sdk-node@[^\s"]+"?$/,
      );
      assert.equal(receiver.bodies.length, 0);
    });

    it("require('rampart') and require('rampart/tracing') load; startTracing() throws naming every missing package", () => {
      const script = `
        const rampart = require('rampart');
        const tracing = require('rampart/tracing');
        const out = { main: typeof rampart.createRateLimiter, peers: tracing.TRACING_PEER_PACKAGES };
        try {
          tracing.startTracing({ config: tracing.loadTracingConfig({ TRACING_ENABLED: 'true' }) });
          out.started = true;
        } catch (err) {
          out.error = { name: err.name, message: err.message, packages: err.packages };
        }
        process.stdout.write(JSON.stringify(out));
      `;
      const run = spawnSync(process.execPath, ['-e', script], { cwd: none.dir, env: childEnv({}), encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const out = JSON.parse(run.stdout) as {
        main: string;
        peers: string[];
        started?: boolean;
        error?: { name: string; message: string; packages: string[] };
      };
      assert.equal(out.main, 'function');
      assert.equal(out.started, undefined, 'did not start');
      assert.equal(out.error?.name, 'MissingTracingPackagesError');
      // The default protocol is http/protobuf: every package but the two other exporters.
      const needed = out.peers.filter((p) => !p.endsWith('otlp-grpc') && !p.endsWith('otlp-http'));
      assert.deepEqual([...(out.error?.packages ?? [])].sort(), needed.sort());
      assert.ok(!(out.error?.message ?? '').includes('\n'), 'one line');
      for (const p of needed) assert.match(out.error?.message ?? '', new RegExp(`Fix: npm install .*${p}@`));
    });
  });

  it("require('rampart') loads no OpenTelemetry package but the API, even where they are installed", () => {
    const script = `
      require('rampart');
      process.stdout.write(JSON.stringify(Object.keys(require.cache)));
    `;
    const run = spawnSync(process.execPath, ['-e', script], { cwd: full.dir, env: childEnv({}), encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const loaded = (JSON.parse(run.stdout) as string[]).filter((p) => p.includes('/node_modules/@opentelemetry/'));
    assert.ok(
      loaded.some((p) => p.includes('/@opentelemetry/api/')),
      'positive control: the API is loaded (the rate limiter uses it)',
    );
    assert.deepEqual(
      loaded.filter((p) => !p.includes('/@opentelemetry/api/')),
      [],
    );
  });
});
