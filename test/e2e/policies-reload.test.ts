import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startSampleChild, type SampleChild } from '../support/sample-child';

/** `public` on GET /v1/status (the default surfaces): 1 token per 1000 s, so a drained bucket stays drained. */
const policies = (burst: number) =>
  JSON.stringify({ policies: { public: { algorithm: 'token_bucket', rps: 0.001, burst, key: 'ip', failMode: 'closed' } } });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A directory laid out as Kubernetes mounts a ConfigMap: `policies.json -> ..data/policies.json`,
 * `..data -> ..<version>`; a new version is a new directory and an atomic rename of `..data`.
 */
function configMapDir(root: string) {
  return {
    path: join(root, 'policies.json'),
    /** Writes `..<version>/policies.json` and swaps `..data` to it; returns the time of the swap. */
    publish(version: string, content: string): number {
      mkdirSync(join(root, `..${version}`));
      writeFileSync(join(root, `..${version}`, 'policies.json'), content);
      symlinkSync(`..${version}`, join(root, '..data_tmp'));
      renameSync(join(root, '..data_tmp'), join(root, '..data'));
      return performance.now();
    },
  };
}

describe('hot reload of the policies file (the sample API process, ConfigMap layout)', function () {
  this.timeout(90_000);
  let schema: TestSchema;
  let dir: string;
  let app: SampleChild | undefined;
  const lines: string[] = [];

  before(async () => {
    schema = await createTestSchema('policies_reload');
    dir = mkdtempSync(join(tmpdir(), 'rampart-reload-'));
  });
  after(async () => {
    await app?.kill();
    await schema?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function status(): Promise<{ status: number; q: number }> {
    const res = await fetch(`${app?.base}/v1/status`);
    await res.arrayBuffer();
    const q = /"public";q=(\d+)/.exec(res.headers.get('ratelimit-policy') ?? '')?.[1];
    return { status: res.status, q: Number(q) };
  }
  /** Requests until the policy in force has `burst` (its RateLimit-Policy q): the ms since `since`. */
  async function appliedWithin(burst: number, since: number, limitMs: number): Promise<{ ms: number; status: number }> {
    for (;;) {
      const r = await status();
      if (r.q === burst) return { ms: performance.now() - since, status: r.status };
      if (performance.now() - since > limitMs) assert.fail(`burst ${burst} not applied after ${limitMs} ms (q=${r.q})`);
      await sleep(5);
    }
  }
  const logged = (text: string) => lines.filter((l) => l.includes(text));
  /** The lines with `text` once there are `n` of them (a log line may arrive after the response that shows its effect). */
  async function loggedAtLeast(text: string, n: number): Promise<string[]> {
    const until = performance.now() + 30_000;
    while (logged(text).length < n && performance.now() < until) await sleep(20);
    return logged(text);
  }
  async function metric(result: string): Promise<number> {
    const text = await (await fetch(`${app?.metricsBase}/metrics`)).text();
    const m = new RegExp(`^rampart_policy_reloads_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text);
    assert.ok(m !== null, `rampart_policy_reloads_total{result="${result}"} not in /metrics`);
    return Number(m[1]);
  }

  it('applies a swapped file keeping the bucket, keeps the policies on an invalid one (one log line, counted), and reloads on SIGHUP', async () => {
    const mount = configMapDir(dir);
    mount.publish('2026_a', policies(3));
    symlinkSync(join('..data', 'policies.json'), mount.path);
    app = await startSampleChild({ DATABASE_URL: schema.url, RATE_LIMIT_POLICIES_FILE: mount.path });
    let partial = '';
    app.child.stdout?.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
    });
    assert.equal(await metric('success'), 0);
    assert.equal(await metric('error'), 0);

    // Drain the bucket of 3 (the last denial is remembered in the deny cache).
    const drained = [await status(), await status(), await status(), await status()];
    assert.deepEqual(
      drained.map((r) => r.status),
      [200, 200, 200, 429],
    );
    assert.equal(drained[3]?.q, 3);

    // 1. A new version swapped in: burst 10 on every new request once seen; 3 of it already taken.
    const swapped = mount.publish('2026_b', policies(10));
    const applied = await appliedWithin(10, swapped, 30_000);
    console.log(`      ConfigMap swap applied after ${applied.ms.toFixed(0)} ms`);
    assert.equal(applied.status, 200);
    const rest: number[] = [];
    for (let i = 0; i < 7; i++) rest.push((await status()).status);
    assert.deepEqual(rest, [200, 200, 200, 200, 200, 200, 429], 'burst 10 with 3 taken before the reload: 7 in all after it');
    const reloaded = await loggedAtLeast('"msg":"policies reloaded"', 1);
    assert.equal(reloaded.length, 1, reloaded.join('\n'));
    assert.match(reloaded[0] ?? '', /"policies":\["public","authenticated","login_ip","login_credential","auth_ip"\]/);
    assert.equal(await metric('success'), 1);

    // 2. An invalid version: the running policies stay; one line names the place; counted once.
    mount.publish('2026_c', policies(0));
    const deadline = performance.now() + 30_000;
    while (logged('policies not reloaded').length === 0 && performance.now() < deadline) await sleep(20);
    await sleep(1_200); // time for the watch and the poll to say it again, if they would
    const refused = logged('policies not reloaded');
    assert.equal(refused.length, 1, refused.join('\n'));
    assert.match(refused[0] ?? '', /"level":40/);
    assert.match(refused[0] ?? '', /RATE_LIMIT_POLICIES_FILE \([^)]*policies\.json\): policies\.public\.burst: Too small/);
    assert.equal(logged('policies.public.burst').length, 1);
    assert.deepEqual(await status(), { status: 429, q: 10 }, 'burst 10 still decides');
    assert.equal(await metric('error'), 1);
    assert.equal(await metric('success'), 1);

    // 3. Rewritten in place, same size and modification time: the poll cannot tell; SIGHUP reads it.
    const target = join(dir, '..2026_c', 'policies.json');
    const t = Math.floor(Date.now() / 1000) - 60;
    utimesSync(target, t, t);
    await sleep(800); // the poll sees the new time, reads the same content: nothing to do
    const size = statSync(target).size;
    writeFileSync(mount.path, policies(7));
    utimesSync(target, t, t);
    assert.equal(statSync(target).size, size);
    await sleep(1_200);
    assert.deepEqual(await status(), { status: 429, q: 10 }, 'not seen without the signal');
    const signalled = performance.now();
    app.child.kill('SIGHUP');
    const bySignal = await appliedWithin(7, signalled, 30_000);
    console.log(`      SIGHUP applied after ${bySignal.ms.toFixed(0)} ms`);
    assert.equal(bySignal.status, 429, 'burst 7 with 10 taken');
    assert.match((await loggedAtLeast('"msg":"policies reloaded"', 2))[1] ?? '', /"trigger":"signal"/);
    assert.equal(await metric('success'), 2);
    assert.equal(await metric('error'), 1);

    // The watch stops with the rest: SIGTERM still ends the process cleanly.
    app.child.kill('SIGTERM');
    const exit = await app.exited;
    assert.equal(exit.code, 0, app.stderr());
  });
});
