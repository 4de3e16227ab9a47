import { performance } from 'node:perf_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { OptionsError } from '../internal/options';
import { createBreakerPool } from './breakers';
import { createDenyCache } from './deny-cache';
import { createFailureReporter } from './failures';
import { defaultTier, identities } from './identity';
import { bucketKey } from './key-format';
import { invalid, resolveOptions, type BreakerState, type RateLimiter, type RateLimiterOptions, type SurfaceOptions } from './options';
import { createOverrides } from './overrides';
import { overridden } from './compile';
import { createPlanner, denies, type CompiledPolicy, type Plan } from './plan';
import { checkPolicySwap } from './policy-swap';
import { createResponder, holdLeases } from './responses';
import { surfaceRouter } from './surfaces';
import type { Check, PolicyOptions } from './types';
import type { Decision } from './store';

export { isStoreMisuse } from './breakers';
export { rateLimitFailure } from './failures';
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

/**
 * Builds a rate limiter: validates every policy and surface now (a mistake throws here, never
 * per request), and precomputes what each request needs. The parts: options.ts (defaults and
 * checks), identity.ts, compile.ts and algorithms.ts (policies compiled once), plan.ts (plans with their counters),
 * breakers.ts (deadline and circuit breakers), deny-cache.ts, surfaces.ts, responses.ts (headers,
 * the 429, leases held), failures.ts (backend failures counted, reported and said in the 503),
 * overrides.ts, policy-swap.ts; here, the wiring and the per-request middleware.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const store = options.store;
  const o = resolveOptions(options);
  const { prefix } = o;
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
  const failures = createFailureReporter({
    storeName: store.name,
    deadlineMs: o.deadlineMs,
    observer,
    onBackendError: options.onBackendError,
    domainOf: (err) => pool.domainOf(err),
  });
  const { headers, deny } = createResponder(o.writeHeaders);

  const denied = createDenyCache(o.denyCacheMaxKeys);
  /** Bumped by each setPolicies: a decision begun under older policies is not remembered in the deny cache. */
  let generation = 0;

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
      const key = bucketKey(prefix, policy.keyName, policy.identity(req, res));
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
          if (p.holdsLeases) holdLeases(res, () => store.release?.(checks).catch(failures.report));
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
        failures.answer(err, p, res, next);
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
    checkPolicySwap({
      before: policySet,
      after: policies,
      limits: [...slots.values()].map((slot) => slot.names),
      keptSurfaces: kept ? surfaceList : undefined,
      surfacesLeftEmpty: surfacesUsed && nextSurfaces.length === 0,
    });
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

  const { setOverride, clearOverride } = createOverrides({
    prefix,
    store,
    identities: ids,
    policies: () => policySet,
    checkOf: (name, p, numbers, key) =>
      (planner({ [name]: overridden(name, p, numbers) })([name]).policies[0] as CompiledPolicy).check(key, 1),
  });

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
