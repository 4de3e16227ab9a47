import { performance } from 'node:perf_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createBreakerPool, isStoreMisuse } from './breakers';
import { createConsume } from './consume';
import { createOperatorControls } from './operator';
import { createDenyCache } from './deny-cache';
import { createFailureReporter } from './failures';
import { defaultTier, identities } from './identity';
import { createHandedOut } from './handed-out';
import { resolveOptions, type BreakerState, type RateLimiter, type RateLimiterOptions } from './options';
import { createOverrides } from './overrides';
import { overridden } from './compile';
import { createPlanner, denies, type CompiledPolicy, type Plan } from './plan';
import { fillChecks } from './request-checks';
import { createResponder, whenResponseEnds } from './responses';
import { settle } from './settle';
import { forwardingCheck } from './guardrails';
import { createLocalAnswer, createLocalFallback } from './local';
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
 * checks), identity.ts, compile.ts and algorithms.ts (policies compiled once), plan.ts (plans
 * with their counters), request-checks.ts (a request's checks and deny-cache key), breakers.ts
 * (deadline and circuit breakers), deny-cache.ts, surfaces.ts, handed-out.ts (what limit() and
 * surfaces() hand out, swapped by setPolicies, checked by policy-swap.ts), responses.ts
 * (headers, the 429, what runs when a response ends), settle.ts, failures.ts (backend failures counted, reported and said in
 * the 503), overrides.ts; here, the wiring and the per-request middleware.
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
      canAdjust: store.adjust !== undefined,
    });
  // Every policy and surface is checked before the breaker pool starts listening to the store: a
  // mistake throws without leaving anything behind.
  const handedOut = createHandedOut({
    policies: options.policies,
    plan: planner(options.policies),
    surfaces: options.surfaces ?? [],
    middleware: (plan) => middleware(plan),
  });

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

  const denied = createDenyCache(o.denyCacheMaxKeys, o.denyCacheMaxHoldMs);
  const fallback = createLocalFallback({ store, prefix, size: o.fleetSize, heartbeatMs: o.heartbeatMs });
  /** The heartbeat runs while some policy fails `local`. */
  const beatFor = (policies: Readonly<Record<string, PolicyOptions>>) => {
    if (Object.values(policies).some((p) => p.failMode === 'local')) fallback.start();
  };
  beatFor(options.policies);
  /** Bumped by each setPolicies: a decision begun under older policies is not remembered in the deny cache. */
  let generation = 0;

  const tierOf = options.tier ?? defaultTier;

  /** A reservation that stands as reserved: said to `onSettleError`; a store's failure is also a backend failure. */
  function settleFailed(err: unknown, policy: string, fromStore: boolean): void {
    const e = fromStore ? failures.report(err) : err instanceof Error ? err : new Error(String(err));
    options.onSettleError?.(e, policy);
  }

  const forwarding = forwardingCheck(
    observer?.forwardingProblem?.bind(observer),
    options.onWarning ?? ((w) => process.emitWarning(w.message, { code: w.code })),
  );

  /** The hot path: everything it touches was bound when the plan was made. */
  function middleware(plan: Plan): RequestHandler {
    // Tiers: the request's tier picks a plan made once per tier.
    if (plan.tiered)
      return (req, res, next) => {
        forwarding(req);
        skipThenDecide(plan.forTier(tierOf(req, res)), req, res, next);
      };
    if (!plan.skippable)
      return (req, res, next) => {
        forwarding(req);
        decideFor(plan, req, res, next);
      };
    return (req, res, next) => {
      forwarding(req);
      skipThenDecide(plan, req, res, next);
    };
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
    const cacheKey = fillChecks(prefix, p, req, res, checks);
    if (typeof cacheKey !== 'string') {
      next(cacheKey);
      return;
    }
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
          headers(res, p, decision.remaining, decision.resetUs, p.settles === 0 ? undefined : checks);
          if (p.holdsLeases) whenResponseEnds(res, () => store.release?.(checks).catch(failures.report));
          if (p.settles !== 0) whenResponseEnds(res, () => settle(store, p, checks, decision, req, res, settleFailed));
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
        // With a penalty each refusal is a strike the store must see, and a block is the store's
        // to lift (reset, unblock from another process): neither is remembered here.
        if (gen === generation && p.cachesDenials && !p.penalized)
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
        if (!p.failLocal || isStoreMisuse(err)) failures.answer(err, p, res, next);
        else {
          failures.report(err);
          answerLocally(p, checks, req, res, next);
        }
      },
    );
  }

  const answerLocally = createLocalAnswer({ fallback, responder: { headers, deny }, settleFailed, otherwise: failures.answer });

  const { setOverride, clearOverride } = createOverrides({
    prefix,
    store,
    identities: ids,
    policies: () => handedOut.policies,
    checkOf: (name, p, numbers, key) =>
      (planner({ [name]: overridden(name, p, numbers) })([name]).policies[0] as CompiledPolicy).check(key, 1),
  });

  const consume = createConsume({
    prefix,
    identities: ids,
    store,
    planOf: (names) => handedOut.planOf(names),
    decide: (checks) => pool.decide(checks),
    denied,
    generation: () => generation,
    latency,
    failure: failures,
    onReleaseError: (err) => failures.report(err),
    local: fallback,
  });

  const operator = createOperatorControls({
    prefix,
    identities: ids,
    store,
    planOf: (names) => handedOut.planOf(names),
    forget: () => denied.clear(),
  });

  return {
    consume,
    ...operator,
    setOverride,
    clearOverride,
    limit: (...names: string[]) => handedOut.limit(names),
    surfaces: () => handedOut.surfaces(),
    setPolicies(policies, surfaces) {
      handedOut.swap(policies, planner(policies), surfaces);
      beatFor(policies);
      // A denial remembered under the old numbers must not outlive them.
      generation++;
      denied.clear();
    },
    get breakerState(): BreakerState {
      return pool.state;
    },
    close() {
      pool.close();
      fallback.close();
      denied.clear();
      return Promise.resolve();
    },
  };
}
