import { performance } from 'node:perf_hooks';
import { trace } from '@opentelemetry/api';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import CircuitBreaker from 'opossum';
import { sendError } from '../errors';
import type { RateLimitMetrics } from '../metrics/metrics';
import { headerWriter, policyHeaderValue, type HeaderForm, type HeaderPolicy, type HeaderWriter } from './headers';
import { customIdentity, digest, ipIdentity, safeIdentity } from './keys';
import {
  SLIDING_WINDOW,
  TOKEN_BUCKET,
  type CallGuard,
  type Check,
  type Decision,
  type FailMode,
  type KeyFunction,
  type PolicyOptions,
  type RateLimitStore,
} from './types';

/** A route (or route prefix) and the policies that guard it. Field names as in the policies file. */
export interface SurfaceOptions {
  readonly surface_id: string;
  /** An HTTP method, or `*` (default) for any. */
  readonly method?: string;
  /** An exact path, or a prefix ending in `*` (`/v1/notes*`). */
  readonly path: string;
  readonly policies: readonly string[];
  /** Overrides `rps` of the surface's token-bucket policies (their buckets become the surface's own). */
  readonly rate_limit_rps?: number;
  /** Overrides `burst` of the surface's token-bucket policies. */
  readonly rate_limit_burst?: number;
}

/** Circuit breaker settings (see opossum). */
export interface BreakerOptions {
  /** Failure percentage over the rolling window that opens the breaker. */
  readonly errorThresholdPercentage?: number;
  /** Calls in the window before the breaker may open. */
  readonly volumeThreshold?: number;
  /** How long the breaker stays open before one probe call is let through. */
  readonly resetTimeoutMs?: number;
  /** The rolling window of statistics. */
  readonly rollingWindowMs?: number;
}

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  readonly store: RateLimitStore;
  /** Named policies; names are lower-case `[a-z0-9_.-]`. */
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  /** Routes and their policies, for {@link RateLimiter.surfaces}. */
  readonly surfaces?: readonly SurfaceOptions[];
  /** Redis key prefix: keys are `<prefix>:<policy>:{<identity>}`. */
  readonly prefix?: string;
  /** RateLimit header form. */
  readonly headers?: HeaderForm;
  /** Longest wait for the store; past it the decision counts as a backend failure. */
  readonly deadlineMs?: number;
  /** Let every policy through on backend failure (never in production: the config refuses it). */
  readonly devFailOpen?: boolean;
  /** Remember denied keys in-process until their retry time; `false` turns it off. */
  readonly denyCache?: { readonly maxKeys: number } | false;
  readonly breaker?: BreakerOptions;
  /** IPv6 clients share a bucket per prefix of this length. */
  readonly ipv6Subnet?: number;
  /** The principal of a request; default `res.locals.principal.id`, then `req.user.id`. */
  readonly principal?: KeyFunction;
  /** The credential of a request (hashed before use); default `X-API-Key`, then a JSON body's `username`. */
  readonly credential?: KeyFunction;
  readonly metrics?: RateLimitMetrics;
  /** Told about backend failures, at most once per second. */
  readonly onBackendError?: (err: Error) => void;
}

/** Defaults of {@link createRateLimiter}. README's table repeats them; a unit test pins them. */
export const RATE_LIMITER_DEFAULTS = Object.freeze({
  prefix: 'rl',
  headers: 'draft-10' as HeaderForm,
  deadlineMs: 100,
  devFailOpen: false,
  denyCacheMaxKeys: 10_000,
  ipv6Subnet: 64,
  failMode: 'closed' as FailMode,
  key: 'ip' as const,
  breaker: Object.freeze({
    errorThresholdPercentage: 50,
    volumeThreshold: 5,
    resetTimeoutMs: 2_000,
    rollingWindowMs: 10_000,
  }),
});

/** Breaker states, as reported by {@link RateLimiter.breakerState}. */
export type BreakerState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

/** A set of policies and the middlewares that apply them. */
export interface RateLimiter {
  /** A middleware that applies these policies (all-or-nothing) to every request it sees. */
  limit(...policies: string[]): RequestHandler;
  /** A middleware that applies the policies of the first surface matching the request. */
  surfaces(): RequestHandler;
  /** The circuit breakers' state: the worst of them (one per failure domain of the store). */
  readonly breakerState: BreakerState;
  /** Stops the breaker's timers. The store is not closed: it was passed in. */
  close(): Promise<void>;
}

const POLICY_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
const MICROS = 1_000_000;

interface CompiledPolicy {
  readonly name: string;
  /** Name inside the key: the policy, or `policy@surface` when a surface overrides its numbers. */
  readonly keyName: string;
  readonly kind: typeof TOKEN_BUCKET | typeof SLIDING_WINDOW;
  readonly a: number;
  readonly b: number;
  readonly failMode: FailMode;
  readonly identity: (req: Request, res: Response) => string;
  readonly header: HeaderPolicy;
}

interface Plan {
  readonly label: string;
  readonly policies: readonly CompiledPolicy[];
  readonly headerPolicies: readonly HeaderPolicy[];
  readonly policyHeader: string;
  readonly failOpen: boolean;
  readonly counters: {
    readonly allowed: () => void;
    /** Counts `limited` for the policies that denied, `denied_by_other` for the rest. */
    readonly limited: (remaining: readonly number[]) => void;
    readonly failedOpen: () => void;
    readonly failedClosed: () => void;
  };
}

/** Outcomes counted in `rampart_rate_limit_decisions_total`, per policy of a request. */
export type DecisionOutcome = 'allowed' | 'limited' | 'denied_by_other' | 'failed_open' | 'failed_closed';

/** Whether check `i` of a denied decision is one that denied it (it had less than one request left). */
const denies = (remaining: readonly number[], i: number) => (remaining[i] as number) < 1;

/**
 * A reply that says the store was used wrongly (a script call over keys in several Cluster hash
 * slots): a bug, not an outage. It is never answered by a fail mode, and no breaker counts it.
 */
export function isStoreMisuse(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('CROSSSLOT');
}

function deadlineError(ms: number): Error {
  return Object.assign(new Error(`the rate limit store did not answer within ${ms} ms`), { code: 'ETIMEDOUT' });
}

interface CachedDenial {
  readonly untilUs: number;
  readonly atUs: number;
  readonly remaining: readonly number[];
  readonly resetUs: readonly number[];
}

const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;

function invalid(message: string): never {
  throw new TypeError(`rateLimit: ${message}`);
}

function positive(value: unknown, what: string, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    invalid(`${what} must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return value;
}

function defaultPrincipal(req: Request, res: Response): string | undefined {
  const fromLocals = (res.locals['principal'] as { id?: unknown } | undefined)?.id;
  if (typeof fromLocals === 'string' || typeof fromLocals === 'number') return String(fromLocals);
  const fromUser = (req as Request & { user?: { id?: unknown } }).user?.id;
  return typeof fromUser === 'string' || typeof fromUser === 'number' ? String(fromUser) : undefined;
}

function defaultCredential(req: Request): string | undefined {
  const apiKey = req.headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey !== '') return apiKey;
  const username = (req.body as { username?: unknown } | undefined)?.username;
  return typeof username === 'string' && username !== '' ? username.toLowerCase() : undefined;
}

/**
 * Builds a rate limiter: validates every policy and surface now (a mistake throws here, never
 * per request), and precomputes what each request needs.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const d = RATE_LIMITER_DEFAULTS;
  const store = options.store;
  const prefix = options.prefix ?? d.prefix;
  const form = options.headers === undefined ? d.headers : options.headers;
  if (form !== false && form !== 'draft-10' && form !== 'draft-7' && form !== 'draft-6') {
    invalid(`headers must be "draft-10", "draft-7", "draft-6" or false, got ${String(form)}`);
  }
  const writeHeaders: HeaderWriter | undefined = headerWriter(form);
  const deadlineMs = positive(options.deadlineMs ?? d.deadlineMs, 'deadlineMs', true);
  const devFailOpen = options.devFailOpen ?? d.devFailOpen;
  const ipv6Subnet = options.ipv6Subnet ?? d.ipv6Subnet;
  if (!Number.isInteger(ipv6Subnet) || ipv6Subnet < 1 || ipv6Subnet > 128) invalid(`ipv6Subnet must be 1..128, got ${ipv6Subnet}`);
  if (!/^[A-Za-z0-9_.:-]{1,32}$/.test(prefix)) invalid(`prefix must be 1-32 of [A-Za-z0-9_.:-], got ${JSON.stringify(prefix)}`);
  const principal = options.principal ?? defaultPrincipal;
  const credential = options.credential ?? defaultCredential;
  const metrics = options.metrics;

  const ipOf = (req: Request) => `i:${ipIdentity(req.ip ?? req.socket.remoteAddress, ipv6Subnet)}`;
  const resolvers: Record<'ip' | 'principal' | 'credential', (req: Request, res: Response) => string> = {
    ip: ipOf,
    principal: (req, res) => {
      const p = principal(req, res);
      return p === undefined ? ipOf(req) : `p:${safeIdentity(p)}`;
    },
    credential: (req, res) => {
      const c = credential(req, res);
      return c === undefined ? ipOf(req) : `c:${digest(c)}`;
    },
  };

  function compilePolicy(name: string, overrides?: SurfaceOptions): CompiledPolicy {
    const p = options.policies[name];
    if (p === undefined) invalid(`unknown policy "${name}"${overrides ? ` in surface "${overrides.surface_id}"` : ''}`);
    const failMode = p.failMode ?? d.failMode;
    if (failMode !== 'open' && failMode !== 'closed') invalid(`policy "${name}": failMode must be "open" or "closed"`);
    const key = p.key ?? d.key;
    let identity: (req: Request, res: Response) => string;
    if (typeof key === 'function') {
      identity = (req, res) => {
        const v = key(req, res);
        return v === undefined ? ipOf(req) : customIdentity(v);
      };
    } else if (key === 'ip' || key === 'principal' || key === 'credential') {
      identity = resolvers[key];
    } else {
      invalid(`policy "${name}": key must be "ip", "principal", "credential" or a function`);
    }
    if (p.algorithm === 'token_bucket') {
      const overridden = overrides?.rate_limit_rps !== undefined || overrides?.rate_limit_burst !== undefined;
      const rps = positive(overrides?.rate_limit_rps ?? p.rps, `policy "${name}": rps`, false);
      const burst = positive(overrides?.rate_limit_burst ?? p.burst, `policy "${name}": burst`, true);
      const interval = Math.max(1, Math.round(MICROS / rps));
      return {
        name,
        keyName: overridden && overrides ? `${name}@${overrides.surface_id}` : name,
        kind: TOKEN_BUCKET,
        a: interval,
        b: burst,
        failMode,
        identity,
        header: { name, quota: burst, windowSeconds: Math.max(1, Math.ceil((burst * interval) / MICROS)) },
      };
    }
    if (p.algorithm === 'sliding_window') {
      const limit = positive(p.limit, `policy "${name}": limit`, true);
      const windowSeconds = positive(p.windowSeconds, `policy "${name}": windowSeconds`, false);
      return {
        name,
        keyName: name,
        kind: SLIDING_WINDOW,
        a: Math.round(windowSeconds * MICROS),
        b: limit,
        failMode,
        identity,
        header: { name, quota: limit, windowSeconds: Math.ceil(windowSeconds) },
      };
    }
    return invalid(`policy "${name}": algorithm must be "token_bucket" or "sliding_window"`);
  }

  for (const name of Object.keys(options.policies)) {
    if (!POLICY_NAME.test(name)) invalid(`policy name "${name}" must match ${POLICY_NAME}`);
    compilePolicy(name);
  }

  function compilePlan(names: readonly string[], surface?: SurfaceOptions): Plan {
    if (names.length === 0) invalid(`${surface ? `surface "${surface.surface_id}"` : 'limit()'} names no policy`);
    if (new Set(names).size !== names.length) invalid(`policies listed twice: ${names.join(', ')}`);
    const policies = names.map((n) => compilePolicy(n, surface));
    const headerPolicies = policies.map((p) => p.header);
    const label = names.join('+');
    const children = (outcome: DecisionOutcome) => (metrics === undefined ? [] : names.map((n) => metrics.decisions.labels(n, outcome)));
    // On the request's span (when tracing runs): the policies and the outcome, never a key.
    const event = (outcome: DecisionOutcome) => ({ 'rate_limit.policies': label, 'rate_limit.outcome': outcome, 'rate_limit.store': store.name });
    const counter = (outcome: DecisionOutcome) => {
      const counters = children(outcome);
      const attributes = event(outcome);
      return () => {
        for (const c of counters) c.inc();
        trace.getActiveSpan()?.addEvent('rate_limit.decision', attributes);
      };
    };
    const limited = children('limited');
    const byOther = children('denied_by_other');
    const limitedEvent = event('limited');
    return {
      label,
      policies,
      headerPolicies,
      policyHeader: form === false ? '' : policyHeaderValue(form, headerPolicies),
      failOpen: devFailOpen || policies.every((p) => p.failMode === 'open'),
      counters: {
        allowed: counter('allowed'),
        limited: (remaining) => {
          for (let i = 0; i < limited.length; i++) (denies(remaining, i) ? limited[i] : byOther[i])?.inc();
          // Which policies denied is spelled out only when a span will carry it: a flood of
          // denials (deny cache hits) costs no string work without tracing.
          const span = trace.getActiveSpan();
          if (span !== undefined) {
            const deniedBy = names.filter((_, i) => denies(remaining, i)).join('+');
            span.addEvent('rate_limit.decision', { ...limitedEvent, 'rate_limit.denied_by': deniedBy });
          }
        },
        failedOpen: counter('failed_open'),
        failedClosed: counter('failed_closed'),
      },
    };
  }

  // --- backend call: deadline + circuit breaker ------------------------------------------
  const b = { ...d.breaker, ...options.breaker };
  const setBreakerGauge = (value: number) => metrics?.breakerState.labels(store.name).set(value);
  setBreakerGauge(0);
  // One breaker per failure domain of the store (one, unless the store says otherwise). A
  // breaker runs whatever backend call it is given, so a decision over several domains charges
  // each of its calls to the breaker of the domain it went to.
  type Call = () => Promise<unknown>;
  type Breaker = CircuitBreaker<[Call], unknown>;
  const breakers = new Map<string, Breaker>();
  const MAX_BREAKERS = 64;
  const worstState = () => {
    let state = 0;
    for (const br of breakers.values()) state = Math.max(state, br.opened ? 2 : br.halfOpen ? 1 : 0);
    return state;
  };
  const updateGauge = () => {
    const w = worstState();
    setBreakerGauge(w === 2 ? 1 : w === 1 ? 2 : 0);
  };
  function newBreaker(): Breaker {
    const br = new CircuitBreaker((call: Call) => call(), {
      timeout: deadlineMs,
      errorThresholdPercentage: b.errorThresholdPercentage,
      volumeThreshold: b.volumeThreshold,
      resetTimeout: b.resetTimeoutMs,
      rollingCountTimeout: b.rollingWindowMs,
      rollingCountBuckets: 10,
      // A misuse is a bug in the caller: it says nothing of the backend's health.
      errorFilter: isStoreMisuse,
    });
    br.on('close', updateGauge);
    br.on('halfOpen', updateGauge);
    br.on('open', updateGauge);
    return br;
  }
  const partition = store.partition?.bind(store);
  const single = partition === undefined ? newBreaker() : undefined;
  if (single !== undefined) breakers.set('', single);
  function breakerOf(domain: string): Breaker {
    let br = breakers.get(domain);
    if (br === undefined) {
      if (breakers.size >= MAX_BREAKERS) {
        // Domains come and go with failovers: forget the oldest.
        const [oldKey, old] = breakers.entries().next().value as [string, Breaker];
        old.shutdown();
        breakers.delete(oldKey);
        updateGauge();
      }
      br = newBreaker();
      breakers.set(domain, br);
    }
    return br;
  }
  const breakerFor = (key: string): Breaker => single ?? breakerOf((partition as (key: string) => string)(key));
  const guard: CallGuard = <T>(key: string, call: () => Promise<T>) => breakerFor(key).fire(call) as Promise<T>;
  /** The breaker of a decision whose checks all live in one failure domain; else undefined. */
  function oneBreaker(checks: readonly Check[]): Breaker | undefined {
    if (single !== undefined) return single;
    const domain = (partition as (key: string) => string)((checks[0] as Check).key);
    for (let i = 1; i < checks.length; i++) if ((partition as (key: string) => string)((checks[i] as Check).key) !== domain) return undefined;
    return breakerOf(domain);
  }
  /**
   * One decision: through its domain's breaker (whose timeout is the deadline), or, over several
   * domains, each store call through its own breaker and the whole within the deadline.
   */
  function decide(checks: readonly Check[]): Promise<Decision> {
    const breaker = oneBreaker(checks);
    if (breaker !== undefined) {
      // The store is told when the breaker gives up on the call (the deadline), so that an
      // admission arriving after it is given back: the request was answered without it.
      const abandon = new AbortController();
      return (breaker.fire(() => store.decide(checks, { signal: abandon.signal })) as Promise<Decision>).catch((err: unknown) => {
        abandon.abort(err);
        throw err;
      });
    }
    // At the deadline the store is told first (it stops, gives back, or answers a denial it
    // already has); the decision fails one turn later if it has not answered by then.
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = deadlineError(deadlineMs);
        controller.abort(err);
        setImmediate(() => reject(err));
      }, deadlineMs);
    });
    return Promise.race([store.decide(checks, { guard, signal: controller.signal }), late]).finally(() => clearTimeout(timer));
  }
  // A backend that reconnects is tried again at once instead of after the breaker's timeout:
  // the breakers of the domain that came back, or all of them.
  const offRecover = store.onRecover?.((domain?: string) => {
    for (const [d, br] of breakers) if ((domain === undefined || d === domain) && (br.opened || br.halfOpen)) br.close();
  });
  // A domain that serves nothing any more (a failed master whose replica took over) gets no
  // call that could close its breaker: forget it, so the breaker state speaks of live domains.
  const offTopology = store.onTopology?.((live) => {
    let changed = false;
    for (const [d, br] of breakers) {
      if (d === '' || live.has(d)) continue;
      br.shutdown();
      breakers.delete(d);
      changed = true;
    }
    if (changed) updateGauge();
  });
  const latency = metrics?.decisionSeconds.labels(store.name);

  let lastErrorReport = 0;
  function reportFailure(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const code = (e as Error & { code?: unknown }).code;
    const reason = code === 'ETIMEDOUT' ? 'timeout' : code === 'EOPENBREAKER' ? 'breaker_open' : 'error';
    metrics?.backendErrors.labels(store.name, reason).inc();
    const now = Date.now();
    if (options.onBackendError !== undefined && now - lastErrorReport >= 1000) {
      lastErrorReport = now;
      options.onBackendError(e);
    }
  }

  // --- denied keys remembered until their retry time --------------------------------------
  const maxDenied = options.denyCache === false ? 0 : (options.denyCache?.maxKeys ?? d.denyCacheMaxKeys);
  const denied = new Map<string, CachedDenial>();
  function cachedDenial(key: string, now: number): CachedDenial | undefined {
    const hit = denied.get(key);
    if (hit === undefined) return undefined;
    if (hit.untilUs > now) return hit;
    denied.delete(key);
    return undefined;
  }
  function rememberDenial(key: string, entry: CachedDenial): void {
    if (maxDenied === 0) return;
    if (denied.size >= maxDenied) {
      const oldest = denied.keys().next();
      if (oldest.done !== true) denied.delete(oldest.value);
    }
    denied.set(key, entry);
  }

  function deny(res: Response, plan: Plan, remaining: readonly number[], resetUs: readonly number[], retryUs: number): void {
    plan.counters.limited(remaining);
    writeHeaders?.(res, plan.policyHeader, plan.headerPolicies, remaining, resetUs);
    let culprit = plan.policies[0] as CompiledPolicy;
    for (let i = 0; i < plan.policies.length; i++) {
      if (denies(remaining, i)) {
        culprit = plan.policies[i] as CompiledPolicy;
        break;
      }
    }
    sendError(res, 'RATE_LIMITED', `Rate limit exceeded (policy "${culprit.name}")`, {
      retryAfterSeconds: retryUs / MICROS,
      extra: { policy: culprit.name },
    });
  }

  function middleware(plan: Plan): RequestHandler {
    const n = plan.policies.length;
    return (req: Request, res: Response, next: NextFunction) => {
      const checks = new Array<Check>(n);
      let cacheKey = '';
      for (let i = 0; i < n; i++) {
        const p = plan.policies[i] as CompiledPolicy;
        const key = `${prefix}:${p.keyName}:{${p.identity(req, res)}}`;
        checks[i] = { key, kind: p.kind, a: p.a, b: p.b, cost: 1 };
        cacheKey = i === 0 ? key : `${cacheKey} ${key}`;
      }
      const now = nowMicros();
      if (maxDenied !== 0) {
        const hit = cachedDenial(cacheKey, now);
        if (hit !== undefined) {
          const elapsed = now - hit.atUs;
          deny(res, plan, hit.remaining, hit.resetUs.map((r) => r - elapsed), hit.untilUs - now);
          return;
        }
      }
      const started = latency === undefined ? 0 : performance.now();
      decide(checks).then(
        (decision: Decision) => {
          latency?.observe((performance.now() - started) / 1000);
          if (decision.allowed) {
            plan.counters.allowed();
            writeHeaders?.(res, plan.policyHeader, plan.headerPolicies, decision.remaining, decision.resetUs);
            next();
            return;
          }
          rememberDenial(cacheKey, {
            untilUs: now + decision.retryAfterUs,
            atUs: now,
            remaining: decision.remaining,
            resetUs: decision.resetUs,
          });
          deny(res, plan, decision.remaining, decision.resetUs, decision.retryAfterUs);
        },
        (err: unknown) => {
          latency?.observe((performance.now() - started) / 1000);
          if (isStoreMisuse(err)) {
            // Not an outage: no fail mode, no breaker, no backend error; the app's error handler.
            next(new Error(`rate limiter: the store was called wrongly (${(err as Error).message})`, { cause: err }));
            return;
          }
          reportFailure(err);
          if (plan.failOpen) {
            plan.counters.failedOpen();
            next();
            return;
          }
          plan.counters.failedClosed();
          sendError(res, 'RATE_LIMITER_UNAVAILABLE', 'The rate limiter is unavailable; try again shortly', {
            retryAfterSeconds: 1,
          });
        },
      );
    };
  }

  // --- surfaces ---------------------------------------------------------------------------
  const exact = new Map<string, RequestHandler>();
  const prefixes: { method: string; prefix: string; handler: RequestHandler }[] = [];
  const surfaceIds = new Set<string>();
  for (const s of options.surfaces ?? []) {
    if (typeof s.surface_id !== 'string' || s.surface_id === '') invalid('every surface needs a surface_id');
    // It becomes part of a Redis key when the surface overrides a bucket: no braces, no spaces.
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(s.surface_id)) invalid(`surface_id ${JSON.stringify(s.surface_id)} must be 1 to 64 of [A-Za-z0-9_.-]`);
    if (surfaceIds.has(s.surface_id)) invalid(`surface_id "${s.surface_id}" is used twice`);
    surfaceIds.add(s.surface_id);
    const method = (s.method ?? '*').toUpperCase();
    if (typeof s.path !== 'string' || !s.path.startsWith('/')) invalid(`surface "${s.surface_id}": path must start with "/"`);
    const handler = middleware(compilePlan(s.policies, s));
    if (s.path.endsWith('*')) prefixes.push({ method, prefix: s.path.slice(0, -1), handler });
    else if (!exact.has(`${method} ${s.path}`)) exact.set(`${method} ${s.path}`, handler);
  }

  return {
    limit(...names: string[]) {
      return middleware(compilePlan(names));
    },
    surfaces() {
      return (req, res, next) => {
        const path = req.path;
        const method = req.method === 'HEAD' ? 'GET' : req.method;
        const handler = exact.get(`${method} ${path}`) ?? exact.get(`* ${path}`);
        if (handler !== undefined) {
          handler(req, res, next);
          return;
        }
        for (const p of prefixes) {
          if ((p.method === '*' || p.method === method) && path.startsWith(p.prefix)) {
            p.handler(req, res, next);
            return;
          }
        }
        next();
      };
    },
    get breakerState(): BreakerState {
      const w = worstState();
      return w === 2 ? 'OPEN' : w === 1 ? 'HALF_OPEN' : 'CLOSED';
    },
    close() {
      offRecover?.();
      offTopology?.();
      for (const br of breakers.values()) br.shutdown();
      breakers.clear();
      denied.clear();
      return Promise.resolve();
    },
  };
}

/** Options of {@link rateLimit}: a limiter and the policies to apply (default: all of them). */
export interface RateLimitOptions extends RateLimiterOptions {
  readonly apply?: readonly string[];
}

/**
 * One middleware for `app.use` or a route: applies `apply` (default every policy in
 * `policies`) to each request. `close()` stops its breaker's timers.
 */
export function rateLimit(options: RateLimitOptions): RequestHandler & { close(): Promise<void> } {
  const limiter = createRateLimiter(options);
  const handler = limiter.limit(...(options.apply ?? Object.keys(options.policies)));
  return Object.assign(handler, { close: () => limiter.close() });
}
