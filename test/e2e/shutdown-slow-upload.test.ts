import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawnMain, waitForExit, waitForListening, type RunResult } from '../support/child';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { rawExchange, type RawExchange, type RawResponse } from '../support/raw-http';
import { trickle, type Trickler } from '../support/trickle';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The work of the complete request in flight at the signal: long enough to outlast the gate's closing. */
const SLOW_MS = 5_000;

describe('shutdown while uploads trickle in (real SIGTERM)', function () {
  // Far below the drain timeout: a drain that waited for a trickling client fails here.
  this.timeout(45_000);
  let schema: TestSchema;
  let child: ChildProcess | undefined;
  const tricklers: Trickler[] = [];

  before(async () => {
    schema = await createTestSchema('e2e_trickle');
  });
  afterEach(() => {
    for (const t of tricklers.splice(0)) t.stop();
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
  });
  after(async () => {
    await schema?.drop();
  });

  async function inFlight(port: number): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } });
    const m = /^rampart_http_requests_in_flight (\S+)$/m.exec(await res.text());
    return Number(m?.[1] ?? -1);
  }

  /** Waits until the server counts `n` requests in flight (the scrape that reads it included). */
  async function untilInFlight(port: number, n: number): Promise<void> {
    let seen = -1;
    for (let i = 0; i < 1000; i++) {
      seen = await inFlight(port);
      if (seen >= n) return;
      await sleep(20);
    }
    throw new Error(`${n} requests never in flight (saw ${seen})`);
  }

  const isShuttingDown = (r: RawResponse | undefined) =>
    r !== undefined &&
    r.status === 503 &&
    r.headers['connection'] === 'close' &&
    Number(r.headers['retry-after']) >= 1 &&
    (JSON.parse(r.body) as { error?: string }).error === 'SERVER_SHUTTING_DOWN';

  it('refuses requests whose body is still arriving with 503 and closes their connections; complete requests drain; exit 0', async () => {
    child = spawnMain({
      PORT: '0',
      RATE_LIMIT_BACKEND: 'memory',
      RATE_LIMIT_DEFAULT_RPS: '100000',
      RATE_LIMIT_DEFAULT_BURST: '100000',
      DATABASE_URL: schema.url,
      SHUTDOWN_DELAY_MS: '0',
      SHUTDOWN_DRAIN_TIMEOUT_MS: '60000',
    });
    const exited: Promise<RunResult> = waitForExit(child, 60_000);
    const port = await waitForListening(child, 30_000);
    const host = `Host: 127.0.0.1:${port}\r\n`;
    const post = (headers: string) => `POST /v1/auth/register HTTP/1.1\r\n${host}Content-Type: application/json\r\n${headers}\r\n`;
    const bytes = (n: number, c = ' ') => Array.from({ length: n }, () => c);
    const slow = `GET /v1/slow?ms=${SLOW_MS} HTTP/1.1\r\n${host}\r\n`;

    // A body of 4096 bytes of which a few arrive, then one byte every 200 ms.
    const lengthKnown = await trickle({
      port,
      head: `${post('Content-Length: 4096\r\n')}{"username":`,
      pieces: bytes(4000),
      intervalMs: 200,
    });
    // The same, with requests pipelined behind the body: they wait in the client's stream.
    const pipelined = await trickle({
      port,
      head: `${post('Content-Length: 64\r\n')}{"username":`,
      pieces: [...bytes(52), ...`GET /v1/status HTTP/1.1\r\n${host}\r\n`.repeat(3).split('')],
      intervalMs: 200,
    });
    // A chunked body, one chunk every 200 ms, never the last one.
    const chunked = await trickle({
      port,
      head: `${post('Transfer-Encoding: chunked\r\n')}1\r\n{\r\n`,
      pieces: bytes(1000, '1\r\n \r\n'),
      intervalMs: 200,
    });
    // A complete request doing its work, with a trickling upload pipelined behind it.
    const behindSlow = await trickle({ port, head: `${slow}${post('Content-Length: 4096\r\n')}{`, pieces: bytes(4000), intervalMs: 200 });
    tricklers.push(lengthKnown, pipelined, chunked, behindSlow);
    // A complete request doing its work, on a keep-alive connection of its own.
    const plain: Promise<RawExchange> = rawExchange(port, slow, { until: (rs) => rs.some((r) => r.complete), timeoutMs: 40_000 });
    // 6 requests and the scrape itself.
    await untilInFlight(port, 7);

    child.kill('SIGTERM');
    const [a, b, c, d, e] = await Promise.all([lengthKnown.done, pipelined.done, chunked.done, behindSlow.done, plain]);
    const result = await exited;

    // Uploads still arriving: 503 at once (no waiting for the body), connection closed after it.
    for (const [name, t] of [
      ['content-length', a],
      ['pipelined', b],
      ['chunked', c],
    ] as const) {
      assert.equal(t.responses.length, 1, `${name}: ${JSON.stringify(t.responses)}`);
      assert.ok(isShuttingDown(t.responses[0]), `${name}: ${JSON.stringify(t.responses[0])}`);
      assert.ok(t.closedByServer, `${name}: the server closed the connection`);
      assert.ok(t.piecesSent < 200, `${name}: answered before the body arrived (${t.piecesSent} pieces sent)`);
    }
    // The complete request ahead of a trickling upload finishes; its answer says Connection:
    // close, so the upload behind it gets the connection's close (a client retries it elsewhere).
    assert.equal(d.responses[0]?.status, 200, JSON.stringify(d.responses));
    assert.deepEqual(JSON.parse(d.responses[0]?.body ?? '{}'), { slept_ms: SLOW_MS });
    assert.equal(d.responses[0]?.headers['connection'], 'close');
    assert.ok(d.responses.length === 1 || isShuttingDown(d.responses[1]), JSON.stringify(d.responses));
    assert.ok(d.closedByServer);
    // The complete request on its own connection is served in full.
    assert.equal(e.responses[0]?.status, 200, JSON.stringify(e.responses));
    assert.deepEqual(JSON.parse(e.responses[0]?.body ?? '{}'), { slept_ms: SLOW_MS });
    assert.equal(e.responses[0]?.headers['connection'], 'close');

    // A clean drain: exit 0, no timeout, the slow requests were what the drain waited for.
    assert.equal(result.signal, null);
    assert.equal(result.code, 0, result.stdout.slice(-3000) + result.stderr);
    assert.doesNotMatch(result.stdout, /drain timed out/);
    const lines = result.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; level?: number; inFlight?: number; refused?: number; res?: { statusCode?: number } });
    const closed = lines.find((l) => l.msg === 'gate closed');
    assert.deepEqual(
      { inFlight: closed?.inFlight, refused: closed?.refused },
      { inFlight: 2, refused: 4 },
      'both slow requests still at work',
    );
    const report = lines.find((l) => l.msg === 'shutdown complete') as { drained?: boolean } | undefined;
    assert.equal(report?.drained, true);
    // Nothing became a 500 (an aborted body read, a late write after the 503).
    assert.deepEqual(
      lines.filter((l) => l.res?.statusCode === 500 || l.msg === 'unhandled error'),
      [],
    );
    assert.doesNotMatch(result.stdout + result.stderr, /ERR_HTTP_HEADERS_SENT|ERR_STREAM/);
  });
});
