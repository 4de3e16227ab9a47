// What the compose drills share (scripts/compose/drills.ts, scripts/compose/faults-drill.ts): keep-alive
// load that records every answer, docker without blocking the load, and the checks of answers.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RATE_LIMITER_DEFAULTS } from '../../src';
import { waitUntil } from '../wait';
import { APP, containerOf as lookUp } from './compose';

const ROOT = join(__dirname, '..', '..');
/** The limiter's deadline in the sample API (RATE_LIMITER_DEFAULTS.deadlineMs). */
const DEADLINE_MS = RATE_LIMITER_DEFAULTS.deadlineMs;
const RESULTS = join(ROOT, 'bench', 'results', 'compose-drills.json');
/** Behind the published port the app's peer is Docker's gateway: trust it, so that X-Forwarded-For gives each load identity its own bucket. */
const TRUSTING = { TRUST_PROXY: 'uniquelocal' };
/**
 * The drills measure failover, not load shedding: on a 2-core VM a `docker kill` and the
 * containers' restarts can stall the app's event loop past the shedder's limit, and its 503
 * OVERLOADED answers would hide what the drill looks at. The in-flight limit stays on.
 */
const DRILL_ENV = { LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0' };
const TRUSTING_DRILL = { ...TRUSTING, ...DRILL_ENV };
const POLICIES = (
  JSON.parse(readFileSync(join(ROOT, 'config', 'policies.example.json'), 'utf8')) as {
    policies: Record<string, { limit?: number; windowSeconds?: number }>;
  }
).policies;

interface Answer {
  readonly sentAt: number;
  readonly ms: number;
  readonly status: number;
  readonly error?: string;
  /** The load identity (the X-Forwarded-For address) when there is one. */
  readonly ip?: string;
  readonly servedBy?: string;
  /** The address of the replica that answered (the load balancer's X-Served-By-Address). */
  readonly servedByAddress?: string;
  /** Its Retry-After, when it has one. */
  readonly retryAfter?: string;
  /** Retries the load balancer made for it. */
  readonly retries?: number;
  /** For a connection error: whether the request went out on a kept-alive socket of an earlier one. */
  readonly reusedSocket?: boolean;
}

interface Request {
  readonly method?: string;
  readonly path: string;
  readonly ip?: string;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
}

/** One request over a keep-alive agent; never throws (a failure is status 0). */
function send(base: string, agent: http.Agent, req: Request, t0: number, timeoutMs = 5_000): Promise<Answer> {
  const sentAt = performance.now() - t0;
  const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
  return new Promise((resolve) => {
    const done = (
      status: number,
      error: string | undefined,
      servedBy?: string,
      retries?: number,
      servedByAddress?: string,
      retryAfter?: string,
    ) =>
      resolve({
        ...(status === 0 ? { reusedSocket: r.reusedSocket } : {}),
        sentAt,
        ms: performance.now() - t0 - sentAt,
        status,
        ...(error === undefined ? {} : { error }),
        ...(req.ip === undefined ? {} : { ip: req.ip }),
        ...(servedBy === undefined ? {} : { servedBy }),
        ...(servedByAddress === undefined ? {} : { servedByAddress }),
        ...(retryAfter === undefined ? {} : { retryAfter }),
        ...(retries === undefined || Number.isNaN(retries) ? {} : { retries }),
      });
    const r = http.request(
      `${base}${req.path}`,
      {
        agent,
        method: req.method ?? 'GET',
        timeout: timeoutMs,
        headers: {
          ...(req.ip === undefined ? {} : { 'x-forwarded-for': req.ip }),
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
          ...req.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let error: string | undefined;
          try {
            error = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: string }).error;
          } catch {
            error = undefined;
          }
          const served = res.headers['x-served-by'];
          const retries = res.headers['x-retries'];
          const address = res.headers['x-served-by-address'];
          done(
            res.statusCode ?? 0,
            typeof error === 'string' ? error : undefined,
            typeof served === 'string' ? served : undefined,
            typeof retries === 'string' ? Number(retries) : undefined,
            typeof address === 'string' ? address : undefined,
            res.headers['retry-after'],
          );
        });
        res.on('error', (err) => done(0, String(err)));
      },
    );
    r.on('timeout', () => r.destroy(new Error(`no answer in ${timeoutMs / 1000} s`)));
    r.on('error', (err) => done(0, String(err)));
    r.end(payload);
  });
}

/**
 * The app keeps an idle connection 5 s (Node's keepAliveTimeout). The load's sockets are retired
 * after 4 s idle, and taken in turn (fifo), so that none is reused just as the app closes it: a
 * request sent on a socket the server is closing gets "socket hang up" before it reaches the app,
 * a race of the client, not a failure of what a drill measures. Node 20's agent does not apply the
 * server's Keep-Alive hint when it has no timeout of its own.
 */
const IDLE_SOCKET_MS = 4_000;

/** `workers` keep-alive loops, each sending `next(i)` then pausing `pauseMs`, until stopped; a request unanswered in `timeoutMs` is a failure. */
function load(base: string, workers: number, next: (worker: number) => Request, t0: number, pauseMs = 5, timeoutMs = 5_000) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: workers, timeout: IDLE_SOCKET_MS, scheduling: 'fifo' });
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (running) {
      answers.push(await send(base, agent, next(w), t0, timeoutMs));
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    answers,
    async stop(): Promise<Answer[]> {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return answers;
    },
  };
}

/** A service's container, looked up once (a blocking call) before any load starts: a container keeps its id through stop, start and restart. */
const containers = new Map<string, string>();
function containerOf(service: string): string {
  const id = containers.get(service) ?? lookUp(service);
  containers.set(service, id);
  return id;
}
const knowContainers = (...services: string[]) => services.forEach(containerOf);

/** docker, without blocking the event loop: the load keeps running (and timing) meanwhile. */
async function docker(...args: string[]): Promise<string> {
  return (await promisify(execFile)('docker', args, { encoding: 'utf8', maxBuffer: 1 << 30 })).stdout;
}
/** Waits (up to 60 s) until `happened` holds; returns when it was first seen, in ms since `t0`. */
async function seenAt(what: string, t0: number, happened: () => Promise<boolean>): Promise<number> {
  let at = 0;
  await waitUntil(
    what,
    async () => {
      if (!(await happened())) return false;
      at = since(t0);
      return true;
    },
    60_000,
    50,
  );
  return at;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const since = (t0: number) => performance.now() - t0;

function countBy(answers: readonly Answer[]): Record<string, number> {
  const by: Record<string, number> = {};
  for (const a of answers) {
    const k = `${a.status}${a.error === undefined ? '' : ` ${a.error}`}`;
    by[k] = (by[k] ?? 0) + 1;
  }
  return by;
}

/** The connection errors, each with when it was sent relative to the fault (ms) and whether its socket was a reused one. */
const connectionErrors = (answers: readonly Answer[], faultAt: number) =>
  answers
    .filter((a) => a.status === 0)
    .map((a) => ({ sentMsAfterFault: Math.round(a.sentAt - faultAt), reusedSocket: a.reusedSocket ?? false, error: a.error ?? '' }));

const slowest = (answers: readonly Answer[]) => Math.round(Math.max(0, ...answers.map((a) => a.ms)));
/**
 * Whether a replica took over 1 s to answer because of the fault: over 1 s per attempt of the
 * load balancer (an answer it retried, after a 503, took that many answers of the app), and over
 * twice the slowest of the 3 s before it (a VM already that slow under the load is not the
 * kill's doing; its figures are reported either way).
 */
const perAttempt = (answers: readonly Answer[]) => answers.map((a) => ({ ...a, ms: a.ms / (1 + (a.retries ?? 0)) }));
const tooSlow = (answers: readonly Answer[], faultAt: number) =>
  slowest(perAttempt(answers)) > Math.max(1_000, 2 * slowest(perAttempt(answers.filter((a) => a.sentAt < faultAt))));
const decided = (a: Answer) => a.status === 200 || a.status === 429;
const documented = (a: Answer) => decided(a) || (a.status === 503 && a.error === 'RATE_LIMITER_UNAVAILABLE');
/** The n-th load identity: a private address, so that TRUST_PROXY=uniquelocal honours it. */
const identity = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

function fail(drill: string, why: string, result: unknown): never {
  throw new Error(`${drill} drill failed (${why}): ${JSON.stringify(result)}`);
}

/**
 * A drill's setup request (register, login, a first note) before any fault: sent again after a
 * 503 (a limiter decision or a password hash past its deadline while the containers still start
 * on two cores), and the drill fails naming the answer when it is not `status`.
 */
async function setupCall(drill: string, path: string, ip: string, body: unknown, status: number, headers: Record<string, string> = {}) {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${APP}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, ...headers },
      body: JSON.stringify(body),
    });
    // A registration whose 503 came after the user was written: it is there.
    if (res.status === status || (attempt > 1 && path === '/v1/auth/register' && res.status === 409)) return res;
    const text = await res.text();
    if (res.status !== 503 || attempt === 10) fail(drill, `${path} answered ${res.status}`, text);
    await sleep(500);
  }
}

export {
  APP,
  DEADLINE_MS,
  DRILL_ENV,
  IDLE_SOCKET_MS,
  POLICIES,
  RESULTS,
  ROOT,
  TRUSTING,
  TRUSTING_DRILL,
  connectionErrors,
  containerOf,
  containers,
  countBy,
  decided,
  docker,
  documented,
  fail,
  identity,
  knowContainers,
  load,
  seenAt,
  send,
  setupCall,
  since,
  sleep,
  slowest,
  tooSlow,
  type Answer,
  type Request,
};
