import { performance } from 'node:perf_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { sendError } from '../errors';
import { OptionsError } from '../internal/options';
import { createBreakerPool, isStoreMisuse } from './breakers';
import { createDenyCache } from './deny-cache';
import { defaultTier, identities } from './identity';
import { invalid, resolveOptions, type BreakerState, type RateLimiter, type RateLimiterOptions, type SurfaceOptions } from './options';
import type { BackendFailure } from './observer';
import { StoreUnavailableError } from './store-unavailable';
import { createPlanner, denies, MICROS, overridden, type CompiledPolicy, type Plan } from './plan';
import { surfaceRouter } from './surfaces';
import { capacityOf, timeOf, type Check, type Decision, type PolicyOptions, type TierNumbers } from './types';

export { isStoreMisuse } from './breakers';
export type { BackendFailure, DecisionOutcome, RateLimitObserver } from './observer';
export {
  RATE_LIMITER_DEFAULTS,
  type BreakerOptions,
  type BreakerState,
  type RateLimiter,
  type RateLimiterOptions,
  type SurfaceOptions,
} from './options';

const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;
/** Backend failures reach `onBackendError` at most this often. */
const REPORT_INTERVAL_MS = 1000;

/** The failure behind each 503 `RATE_LIMITER_UNAVAILABLE` a limiter answered. */
const failedResponses = new WeakMap<object, Error>();

/**
 * The store failure behind `res`'s 503 `RATE_LIMITER_UNAVAILABLE`, when a limiter could not
 * decide for it and the policy fails closed, as the limiter's `onBackendError` would get it
 * (`connect ECONNREFUSED 127.0.0.1:6379` for a Redis store whose client cannot connect): for
 * the request's log line. `undefined` for any other response (a request let through by a
 * policy that fails open goes on to its route, whose outcome is its own). Set only on such a
 * failure: a decided request costs nothing.
 */
export function rateLimitFailure(res: object): Error | undefined {
  return failedResponses.get(res);
}

/**
 * Builds a rate limiter: validates every policy and surface now (a mistake throws here, never
 * per request), and precomputes what each request needs. The parts: options.ts (defaults and
 * checks), identity.ts, plan.ts (policies compiled once, plans with their counters),
 * breakers.ts (deadline and circuit breakers), deny-cache.ts, surfaces.ts; here, the wiring
 * and the per-request middleware.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const store = options.store;
  const o = resolveOptions(options);
  const { prefix, writeHeaders } = o;
  const observer = options.observer;
  const ids = identities(o.ipv6Subnet, options.principal, options.credential);
  /** Compiles a set of policies (a mistake throws): the start, and each {@link RateLimiter.setPolicies}. */
  const planner = (policies: Readonly<Record<string, PolicyOptions>>) =>
    createPlanner({
      policies,
      identities: ids,
      form: o.form,
      devFailOpen: o.devFailOpen,
      observer,
      storeName: store.name,
      shadow: options.shadow === true,
      canRelease: store.release !== undefined,
      canOverride: store.setOverride !== undefined,
    });
  let policySet = options.policies;
  let plan = planner(policySet);

  // Every surface is checked before the breaker pool starts listening to the store: a mistake
  // throws without leaving anything behind.
  let surfaceList = [...(options.surfaces ?? [])];
  const routerFor = (list: readonly SurfaceOptions[], planOf: typeof plan) =>
    list.length === 0 ? undefined : surfaceRouter(list, (s) => middleware(planOf(s.policies, s)));
  let router = routerFor(surfaceList, plan);

  observer?.breakerChanged(store.name, 'CLOSED');
  const pool = createBreakerPool({
    store,
    deadlineMs: o.deadlineMs,
    breaker: o.breaker,
    ...(observer === undefined ? {} : { onStateChange: (state: BreakerState) => observer.breakerChanged(store.name, state) }),
    ...(observer?.shardBreakerChanged === undefined
      ? {}
      : { onDomainState: (domain: string, state: BreakerState | undefined) => observer.shardBreakerChanged?.(store.name, domain, state) }),
  });
  const latency = observer?.decisionTimer(store.name);

  let lastErrorReport = 0;
  /** The last failure other than an open breaker's refusal: what opened it, said when it refuses. */
  let lastFailure: Error | undefined;
  /** The refusal of an open breaker as reported, made once per {@link lastFailure}. */
  let breakerOpen: { after: Error; err: Error } | undefined;
  /** Counts and reports a failure (onBackendError at most once a second); returns it as reported. */
  function reportFailure(err: unknown): Error {
    let e = err instanceof Error ? err : new Error(String(err));
    const code = (e as Error & { code?: unknown }).code;
    const reason: BackendFailure = code === 'ETIMEDOUT' ? 'timeout' : code === 'EOPENBREAKER' ? 'breaker_open' : 'error';
    observer?.backendError(store.name, reason, pool.domainOf(err));
    if (code !== 'EOPENBREAKER') lastFailure = e;
    else if (lastFailure !== undefined) {
      // opossum says only "Breaker is open": say what opened it.
      if (breakerOpen?.after !== lastFailure) {
        const message = `circuit breaker open after: ${lastFailure.message}`;
        const opened =
          lastFailure instanceof StoreUnavailableError
            ? new StoreUnavailableError(message, { cause: e })
            : new Error(message, { cause: e });
        breakerOpen = { after: lastFailure, err: Object.assign(opened, { code: 'EOPENBREAKER' }) };
      }
      e = breakerOpen.err;
    }
    const now = Date.now();
    if (options.onBackendError !== undefined && now - lastErrorReport >= REPORT_INTERVAL_MS) {
      lastErrorReport = now;
      options.onBackendError(e);
    }
    return e;
  }

  /**
   * What a 503 says of a failure: a cause the store vouched for (a {@link StoreUnavailableError}:
   * errno and address), the deadline, or the open breaker (and what opened it); nothing of any
   * other error, whose message was not written for clients.
   */
  function publicCause(e: Error): string | undefined {
    const code = (e as Error & { code?: unknown }).code;
    if (e instanceof StoreUnavailableError) return e.message;
    if (code === 'ETIMEDOUT') return `no answer within ${o.deadlineMs} ms`;
    if (code !== 'EOPENBREAKER') return undefined;
    const after = lastFailure === undefined ? undefined : publicCause(lastFailure);
    return after === undefined ? 'circuit breaker open' : `circuit breaker open after: ${after}`;
  }
  /** The 503's detail, made once per distinct cause. */
  let unavailableDetail = { cause: '', detail: 'The rate limiter is unavailable; try again shortly' };
  function detailOf(e: Error): string {
    const cause = publicCause(e) ?? '';
    if (cause !== unavailableDetail.cause)
      unavailableDetail = {
        cause,
        detail:
          cause === ''
            ? 'The rate limiter is unavailable; try again shortly'
            : `The rate limiter is unavailable (${cause}); try again shortly`,
      };
    return unavailableDetail.detail;
  }

  const denied = createDenyCache(o.denyCacheMaxKeys);
  /** Bumped by each setPolicies: a decision begun under older policies is not remembered in the deny cache. */
  let generation = 0;

  /** The RateLimit headers of the plan's enforced policies. */
  function headers(res: Response, p: Plan, remaining: readonly number[], resetUs: readonly number[]): void {
    if (writeHeaders === undefined || p.headerPolicies.length === 0) return;
    const pick = p.headerPick;
    if (pick === undefined) writeHeaders(res, p.policyHeader, p.headerPolicies, remaining, resetUs);
    else
      writeHeaders(
        res,
        p.policyHeader,
        p.headerPolicies,
        pick.map((i) => remaining[i] as number),
        pick.map((i) => resetUs[i] as number),
      );
  }

  function deny(
    res: Response,
    p: Plan,
    checks: readonly Check[],
    remaining: readonly number[],
    resetUs: readonly number[],
    retryUs: number,
    blocked: number,
  ): void {
    p.counters.limited(remaining, checks, blocked);
    headers(res, p, remaining, resetUs);
    // The policy that refused: one whose penalty blocks first, else the first that denied.
    let at = -1;
    for (let i = 0; i < p.policies.length && at === -1; i++) if ((blocked & (1 << i)) !== 0) at = i;
    for (let i = 0; i < p.policies.length && at === -1; i++) if (denies(remaining, checks, i)) at = i;
    const culprit = p.policies[Math.max(0, at)] as CompiledPolicy;
    if (blocked !== 0 && (blocked & (1 << at)) !== 0)
      sendError(res, 'RATE_LIMITED', `Blocked after repeated refusals (policy "${culprit.name}")`, {
        retryAfterSeconds: retryUs / MICROS,
        extra: { policy: culprit.name, blocked: true },
      });
    else
      sendError(res, 'RATE_LIMITED', `Rate limit exceeded (policy "${culprit.name}")`, {
        retryAfterSeconds: retryUs / MICROS,
        extra: { policy: culprit.name },
      });
  }

  /**
   * An admitted request's concurrency leases are given back once, when its response has been
   * sent or its connection closed, whichever comes first. A failed release (the store down)
   * leaves the lease to end on its own.
   */
  function holdLeases(res: Response, checks: readonly Check[]): void {
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      res.off('finish', release);
      res.off('close', release);
      store.release?.(checks).catch(reportFailure);
    };
    res.once('finish', release);
    res.once('close', release);
    // The client went away while the decision was being made: its 'close' has been and gone.
    if (res.closed) release();
  }

  const tierOf = options.tier ?? defaultTier;

  /** The hot path: everything it touches was bound when the plan was made. */
  function middleware(plan: Plan): RequestHandler {
    // Tiers: the request's tier picks a plan made once per tier.
    if (plan.tiered) return (req, res, next) => skipThenDecide(plan.forTier(tierOf(req, res)), req, res, next);
    if (!plan.skippable) return (req, res, next) => decideFor(plan, req, res, next);
    return (req, res, next) => skipThenDecide(plan, req, res, next);
  }

  /** Leaves out the policies whose allow list takes this request, then decides the rest. */
  function skipThenDecide(plan: Plan, req: Request, res: Response, next: NextFunction): void {
    if (!plan.skippable) {
      decideFor(plan, req, res, next);
      return;
    }
    let mask = 0;
    for (let i = 0; i < plan.policies.length; i++) if ((plan.policies[i] as CompiledPolicy).allowed?.(req, res) === true) mask |= 1 << i;
    if (mask === 0) {
      decideFor(plan, req, res, next);
      return;
    }
    plan.counters.skipped(mask);
    if (mask === 2 ** plan.policies.length - 1) next();
    else decideFor(plan.without(mask), req, res, next);
  }

  /** One decision for the plan's policies. */
  function decideFor(p: Plan, req: Request, res: Response, next: NextFunction): void {
    const n = p.policies.length;
    const checks = new Array<Check>(n);
    let cacheKey = '';
    for (let i = 0; i < n; i++) {
      const policy = p.policies[i] as CompiledPolicy;
      const key = `${prefix}:${policy.keyName}:{${policy.identity(req, res)}}`;
      let cost = policy.cost;
      if (typeof cost === 'function') {
        cost = cost(req, res);
        if (!Number.isInteger(cost) || cost < 1 || cost > policy.capacity) {
          // A bug of the app's cost function: never a decision on a cost no bucket can hold.
          next(
            new OptionsError('rateLimit', `policy "${policy.name}": cost`, `a positive integer no larger than ${policy.capacity}`, cost),
          );
          return;
        }
      }
      checks[i] = policy.check(key, cost);
      // A denial is remembered for one cost: a cheaper request may still fit.
      const entry = typeof policy.cost === 'function' ? `${key}#${cost}` : key;
      cacheKey = i === 0 ? entry : `${cacheKey} ${entry}`;
    }
    // Another tier's numbers may admit what these refused: a denial is remembered per tier.
    if (p.tier !== undefined) cacheKey = `${p.tier}|${cacheKey}`;
    const now = nowMicros();
    if (denied.enabled && p.cachesDenials) {
      const hit = denied.get(cacheKey, now);
      if (hit !== undefined) {
        const elapsed = now - hit.atUs;
        deny(
          res,
          p,
          checks,
          hit.remaining,
          hit.resetUs.map((r) => r - elapsed),
          hit.untilUs - now,
          hit.blocked,
        );
        return;
      }
    }
    const started = latency === undefined ? 0 : performance.now();
    const gen = generation;
    pool.decide(checks).then(
      (decision: Decision) => {
        latency?.((performance.now() - started) / 1000);
        if (decision.allowed) {
          p.counters.allowed();
          headers(res, p, decision.remaining, decision.resetUs);
          if (p.holdsLeases) holdLeases(res, checks);
          next();
          return;
        }
        if (p.shadowMask !== 0) {
          let denying = 0;
          for (let i = 0; i < n; i++) if (denies(decision.remaining, checks, i)) denying |= 1 << i;
          if ((denying & ~p.shadowMask) === 0) {
            // Only shadow policies would refuse: the request passes. The enforced ones still
            // decide (an all-or-nothing denial charged nothing), on their own.
            p.counters.shadowLimited(denying);
            options.onShadowLimited?.(
              p.policies.filter((_, i) => (denying & (1 << i)) !== 0).map((c) => c.name),
              req,
            );
            if (p.shadowMask === 2 ** n - 1) next();
            else decideFor(p.without(p.shadowMask), req, res, next);
            return;
          }
        }
        // With a penalty each refusal is a strike the store must see: only a block is remembered.
        if (gen === generation && p.cachesDenials && (!p.penalized || decision.blocked !== undefined))
          denied.remember(cacheKey, {
            untilUs: now + decision.retryAfterUs,
            atUs: now,
            remaining: decision.remaining,
            resetUs: decision.resetUs,
            blocked: decision.blocked ?? 0,
          });
        deny(res, p, checks, decision.remaining, decision.resetUs, decision.retryAfterUs, decision.blocked ?? 0);
      },
      (err: unknown) => {
        latency?.((performance.now() - started) / 1000);
        if (isStoreMisuse(err)) {
          // Not an outage: no fail mode, no breaker, no backend error; the app's error handler.
          next(new Error(`rate limiter: the store was called wrongly (${(err as Error).message})`, { cause: err }));
          return;
        }
        const e = reportFailure(err);
        if (p.failOpen) {
          p.counters.failedOpen();
          next();
          return;
        }
        p.counters.failedClosed();
        failedResponses.set(res, e);
        sendError(res, 'RATE_LIMITER_UNAVAILABLE', detailOf(e), { retryAfterSeconds: 1 });
      },
    );
  }

  // What setPolicies swaps. Each middleware handed out reads its handler from here per request
  // (one property read), so a swap reaches them all at once; a request already inside keeps
  // the plan it started with (decideFor holds it).
  const slots = new Map<string, LimitSlot>();
  /** Whether surfaces() was handed out: then a table must stay. */
  let surfacesUsed = false;
  const routed: RequestHandler = (req, res, next) => {
    if (router === undefined) next(new Error('rate limiter: setPolicies removed every surface'));
    else router(req, res, next);
  };

  function setPolicies(policies: Readonly<Record<string, PolicyOptions>>, surfaces?: readonly SurfaceOptions[]): void {
    const next = planner(policies);
    const kept = surfaces === undefined;
    const nextSurfaces = kept ? surfaceList : [...surfaces];
    const users = new Map<string, string[]>();
    const use = (name: string, user: string) => {
      if (policies[name] !== undefined) return;
      const list = users.get(name) ?? [];
      list.push(user);
      users.set(name, list);
    };
    for (const slot of slots.values()) for (const n of slot.names) use(n, `limit(${slot.names.map((x) => JSON.stringify(x)).join(', ')})`);
    if (kept) for (const s of surfaceList) for (const n of s.policies) use(n, `surface "${s.surfaceId}"`);
    if (users.size > 0) {
      const what = [...users].map(([n, u]) => `"${n}" (named by ${u.join(', ')})`).join('; ');
      invalid('policies', `setPolicies would drop ${users.size === 1 ? 'a policy still in use' : 'policies still in use'}: ${what}`);
    }
    for (const [n, p] of Object.entries(policies)) {
      const before = policySet[n];
      // The same key would hold another algorithm's state (on Redis: WRONGTYPE until it expires).
      if (before !== undefined && before.algorithm !== p.algorithm)
        invalid(
          'policies',
          `setPolicies cannot change the algorithm of policy "${n}" (${before.algorithm} to ${p.algorithm}): give it a new name`,
        );
    }
    if (surfacesUsed && nextSurfaces.length === 0) invalid('surfaces', 'setPolicies would leave surfaces() with no surface to match');
    const nextRouter = routerFor(nextSurfaces, next);
    const handlers = [...slots.values()].map((slot) => middleware(next(slot.names)));
    // Everything is checked and built: the swap itself cannot throw.
    let i = 0;
    for (const slot of slots.values()) slot.handler = handlers[i++] as RequestHandler;
    policySet = policies;
    plan = next;
    surfaceList = nextSurfaces;
    router = nextRouter;
    // A denial remembered under the old numbers must not outlive them.
    generation++;
    denied.clear();
  }

  /** The key of `identity` (as the app gives it) for an overridable policy, and its numbers in store form. */
  function overrideTarget(policy: string, identity: string): { key: string; p: PolicyOptions } {
    const p = policySet[policy];
    if (p === undefined) invalid('setOverride', `unknown policy "${policy}"`);
    if (p.overrides !== true) invalid('setOverride', `policy "${policy}" does not take overrides (set overrides: true)`);
    if (typeof identity !== 'string' || identity === '') invalid('setOverride', 'the identity must be a non-empty string');
    const kind = typeof p.key === 'function' ? 'custom' : (p.key ?? 'ip');
    return { key: `${prefix}:${policy}:{${ids.encode(kind, identity)}}`, p };
  }

  async function setOverride(policy: string, identity: string, numbers: TierNumbers, ttlSeconds?: number): Promise<void> {
    const { key, p } = overrideTarget(policy, identity);
    // Compiled as the policy itself is: the store keeps the check's time and capacity.
    const own = (planner({ [policy]: overridden(policy, p, numbers) })([policy]).policies[0] as CompiledPolicy).check(key, 1);
    const [a, b] = [timeOf(own), capacityOf(own)];
    if (ttlSeconds !== undefined && (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0))
      invalid('setOverride', `ttlSeconds must be a positive number (got ${String(ttlSeconds)})`);
    await store.setOverride?.(key, a, b, ttlSeconds === undefined ? undefined : ttlSeconds * 1000);
  }

  async function clearOverride(policy: string, identity: string): Promise<void> {
    await store.clearOverride?.(overrideTarget(policy, identity).key);
  }

  return {
    setOverride,
    clearOverride,
    limit(...names: string[]) {
      const id = JSON.stringify(names);
      let slot = slots.get(id);
      if (slot === undefined) {
        slot = { names, handler: middleware(plan(names)) };
        slots.set(id, slot);
      }
      const s = slot;
      return (req, res, next) => s.handler(req, res, next);
    },
    surfaces() {
      if (router === undefined)
        invalid('surfaces', 'surfaces() needs the surfaces option: a table of routes and their policies, ending with a "/*" surface');
      surfacesUsed = true;
      return routed;
    },
    setPolicies,
    get breakerState(): BreakerState {
      return pool.state;
    },
    close() {
      pool.close();
      denied.clear();
      return Promise.resolve();
    },
  };
}

/** The handler one `limit(...)` list gets; {@link RateLimiter.setPolicies} replaces it. */
interface LimitSlot {
  readonly names: readonly string[];
  handler: RequestHandler;
}

/** Options of {@link rateLimit}: a limiter and the policies to apply (default: all of them). */
export interface RateLimitMiddlewareOptions extends RateLimiterOptions {
  readonly apply?: readonly string[];
}

/**
 * One middleware for `app.use` or a route: applies `apply` (default every policy in
 * `policies`) to each request. `close()` stops its breaker's timers.
 */
export function rateLimit(options: RateLimitMiddlewareOptions): RequestHandler & { close(): Promise<void> } {
  const limiter = createRateLimiter(options);
  const handler = limiter.limit(...(options.apply ?? Object.keys(options.policies)));
  return Object.assign(handler, { close: () => limiter.close() });
}
