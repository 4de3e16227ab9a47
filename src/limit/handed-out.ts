import type { RequestHandler } from 'express';
import { invalid, type SurfaceOptions } from './options';
import type { Plan } from './plan';
import { checkPolicySwap } from './policy-swap';
import { surfaceRouter } from './surfaces';
import type { PolicyOptions } from './types';

/** A compiled set of policies: the plan of a list of them (on a surface, with its numbers). */
export type Planner = (names: readonly string[], surface?: SurfaceOptions) => Plan;

/** The handler one `limit(...)` list gets; a swap replaces it. */
interface LimitSlot {
  readonly names: readonly string[];
  handler: RequestHandler;
}

/**
 * The middleware `limit(...)` and `surfaces()` hand out, and the swap of
 * {@link RateLimiter.setPolicies} under them. Each reads its handler from here per request (one
 * property read), so a swap reaches them all at once; a request already inside keeps the plan it
 * started with. The surface table is checked here, when this is made (a mistake throws).
 */
export function createHandedOut(o: {
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  readonly plan: Planner;
  readonly surfaces: readonly SurfaceOptions[];
  /** The per-request middleware of a plan. */
  readonly middleware: (plan: Plan) => RequestHandler;
}) {
  let policies = o.policies;
  let plan = o.plan;
  let surfaceList = [...o.surfaces];
  const routerFor = (list: readonly SurfaceOptions[], planOf: Planner) =>
    list.length === 0 ? undefined : surfaceRouter(list, (s) => o.middleware(planOf(s.policies, s)));
  let router = routerFor(surfaceList, plan);
  const slots = new Map<string, LimitSlot>();
  /** The plans consume() asked for, by their list of names; emptied by a swap. */
  const plans = new Map<string, Plan>();
  /** Whether surfaces() was handed out: then a table must stay. */
  let surfacesUsed = false;
  const routed: RequestHandler = (req, res, next) => {
    if (router === undefined) next(new Error('rate limiter: setPolicies removed every surface'));
    else router(req, res, next);
  };

  return {
    /** The policies in force. */
    get policies() {
      return policies;
    },
    limit(names: string[]): RequestHandler {
      const id = JSON.stringify(names);
      let slot = slots.get(id);
      if (slot === undefined) {
        slot = { names, handler: o.middleware(plan(names)) };
        slots.set(id, slot);
      }
      const s = slot;
      return (req, res, next) => s.handler(req, res, next);
    },
    /** The plan of `names` under the policies in force (consume(): a decision without a request). */
    planOf(names: readonly string[]): Plan {
      const id = JSON.stringify(names);
      let p = plans.get(id);
      if (p === undefined) {
        p = plan(names);
        plans.set(id, p);
      }
      return p;
    },
    surfaces(): RequestHandler {
      if (router === undefined)
        invalid('surfaces', 'surfaces() needs the surfaces option: a table of routes and their policies, ending with a "/*" surface');
      surfacesUsed = true;
      return routed;
    },
    /**
     * Puts `next` (the plan of `after`) and, when given, `surfaces` in force everywhere; throws,
     * changing nothing, what {@link checkPolicySwap} refuses or a surface table mistake.
     */
    swap(after: Readonly<Record<string, PolicyOptions>>, next: Planner, surfaces: readonly SurfaceOptions[] | undefined): void {
      const kept = surfaces === undefined;
      const nextSurfaces = kept ? surfaceList : [...surfaces];
      checkPolicySwap({
        before: policies,
        after,
        limits: [...slots.values()].map((slot) => slot.names),
        keptSurfaces: kept ? surfaceList : undefined,
        surfacesLeftEmpty: surfacesUsed && nextSurfaces.length === 0,
      });
      const nextRouter = routerFor(nextSurfaces, next);
      const handlers = [...slots.values()].map((slot) => o.middleware(next(slot.names)));
      // Everything is checked and built: the swap itself cannot throw.
      let i = 0;
      for (const slot of slots.values()) slot.handler = handlers[i++] as RequestHandler;
      policies = after;
      plan = next;
      plans.clear();
      surfaceList = nextSurfaces;
      router = nextRouter;
    },
  };
}
