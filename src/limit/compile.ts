import { algorithmOf, ALGORITHMS, MICROS } from './algorithms';
import { allowList, type AllowedTest } from './allow-list';
import type { HeaderPolicy } from './headers';
import type { Identities, IdentityOf } from './identity';
import { invalid, positive, RATE_LIMITER_DEFAULTS, refuse, type SurfaceOptions } from './options';
import type { Request, Response } from 'express';
import type {
  Check,
  CostFunction,
  SettleFunction,
  FailMode,
  KeyKind,
  PenaltyCheck,
  PenaltyOptions,
  PolicyOptions,
  TierNumbers,
} from './types';

/** A policy name: a lower-case letter, then up to 63 of `[a-z0-9_.-]`. */
export const POLICY_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
/** A tier's name: 1 to 64 of `[A-Za-z0-9_.-]`. */
export const TIER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** A policy ready for requests: its check's numbers, its identity and its header entry. */
export interface CompiledPolicy {
  readonly name: string;
  /** Name inside the key: the policy, or `policy@surface` when a surface overrides its numbers. */
  readonly keyName: string;
  readonly algorithm: PolicyOptions['algorithm'];
  /** The check of one request for the bucket `key`, taking `cost` from it. */
  readonly check: (key: string, cost: number) => Check;
  /** The fixed cost, or the function that gives each request's (checked per request). */
  readonly cost: number | CostFunction;
  /** The bucket's size (burst or limit): no cost may exceed it. */
  readonly capacity: number;
  /** Whether a request skips this policy (its `allow` list); absent without one. */
  readonly allowed: AllowedTest | undefined;
  /** Decided and counted, never refusing. */
  readonly shadow: boolean;
  /** Its identities may have their own numbers in the store (`overrides: true`). */
  readonly overridable?: boolean;
  readonly failMode: FailMode;
  readonly identity: IdentityOf;
  /** The kind of the policy's key: what an identity given as the app knows it is encoded as. */
  readonly keyKind: KeyKind | 'custom';
  readonly header: HeaderPolicy;
  /**
   * Reserve, then settle: the real cost of an admitted request that reserved `reserved`, asked
   * when its response ends (`settle`); absent for a policy that charges at admission only.
   */
  readonly settle?: (req: Request, res: Response, reserved: number) => number;
}

/**
 * The real cost of a request that reserved `reserved`, by `settle`: `failures` keeps it for a
 * response of status 400 or more, or one never sent in full (the client went away), and
 * refunds it all for the others.
 */
function settlerOf(label: string, settle: unknown): ((req: Request, res: Response, reserved: number) => number) | undefined {
  if (settle === undefined) return undefined;
  if (settle === 'failures') return (_req, res, reserved) => (res.statusCode >= 400 || !res.writableFinished ? reserved : 0);
  if (typeof settle === 'function') {
    const f = settle as SettleFunction;
    return (req, res) => f(req, res);
  }
  return refuse(`${label}: settle`, '"failures" or a function of the request and response giving the real cost', settle);
}

/** `numbers` for a tier or an override of `p` (`label` names it): an object of the fields its algorithm has. */
function checkNumberFields(label: string, p: PolicyOptions, numbers: unknown): asserts numbers is TierNumbers {
  const fields: readonly string[] = algorithmOf(p.algorithm)?.tierFields ?? [];
  if (typeof numbers !== 'object' || numbers === null) refuse(label, `an object of ${fields.join(', ')}`, numbers);
  for (const field of Object.keys(numbers)) {
    if (!fields.includes(field)) refuse(`${label}: ${field}`, `one of ${fields.join(', ')} (${p.algorithm})`, field);
  }
}

/** A policy's `tiers`, checked (names and fields; the numbers are checked when compiled). */
export function tiersOf(name: string, p: PolicyOptions): Readonly<Record<string, TierNumbers>> | undefined {
  const tiers = p.tiers;
  if (tiers === undefined) return undefined;
  if (typeof tiers !== 'object' || tiers === null || Array.isArray(tiers)) refuse(`policy "${name}": tiers`, 'an object of tiers', tiers);
  for (const [tier, numbers] of Object.entries(tiers)) {
    if (!TIER_NAME.test(tier)) refuse(`policy "${name}": tiers`, `tier names matching ${TIER_NAME}`, tier);
    checkNumberFields(`policy "${name}" tier "${tier}"`, p, numbers);
  }
  return tiers;
}

/**
 * Policy `name` with an override's `numbers` over its own (the fields a tier may set), for the
 * planner to compile: the override's numbers are checked and converted as the policy's are.
 */
export function overridden(name: string, p: PolicyOptions, numbers: TierNumbers): PolicyOptions {
  checkNumberFields(`override of policy "${name}"`, p, numbers);
  return { ...p, ...numbers } as PolicyOptions;
}

/** A policy's penalty in µs, checked; `undefined` without one. */
function penaltyOf(name: string, penalty: PenaltyOptions | undefined): PenaltyCheck | undefined {
  if (penalty === undefined) return undefined;
  if (typeof penalty !== 'object' || penalty === null)
    refuse(`policy "${name}": penalty`, '{ denials, withinSeconds, blockSeconds }', penalty);
  const denials = positive(penalty.denials, `policy "${name}": penalty.denials`, true);
  const within = positive(penalty.withinSeconds, `policy "${name}": penalty.withinSeconds`, false);
  const block = positive(penalty.blockSeconds, `policy "${name}": penalty.blockSeconds`, false);
  return { denials, windowUs: Math.max(1000, Math.round(within * MICROS)), blockUs: Math.max(1000, Math.round(block * MICROS)) };
}

export interface CompilerOptions {
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  readonly identities: Identities;
  /** Every policy in shadow mode. */
  readonly shadow: boolean;
  /** `false`: the store cannot give leases back (no `release`), so concurrency policies are refused. */
  readonly canRelease?: boolean;
  /** `false`: the store keeps no overrides (no `setOverride`), so `overrides: true` is refused. */
  readonly canOverride?: boolean;
  /** `false`: the store cannot settle (no `adjust`), so `settle` is refused. */
  readonly canAdjust?: boolean;
}

/**
 * Compiles policy `name` (a mistake throws), with a surface's numbers (token buckets) and a
 * tier's over its own: identity, allow list, mode, cost and its algorithm's check
 * (algorithms.ts), with the policy's penalty and override flag on every check it makes.
 */
export function createCompiler(options: CompilerOptions): (name: string, surface?: SurfaceOptions, tier?: string) => CompiledPolicy {
  const d = RATE_LIMITER_DEFAULTS;
  const { identities } = options;

  function compileNumbers(name: string, surface?: SurfaceOptions, tier?: string): CompiledPolicy {
    const own = options.policies[name];
    if (own === undefined)
      invalid(surface ? 'surfaces' : 'policies', `unknown policy "${name}"${surface ? ` in surface "${surface.surfaceId}"` : ''}`);
    const tierNumbers = tiersOf(name, own)?.[tier ?? ''];
    // The tier's numbers, where it has them, over the policy's own (and a surface's override).
    const p = (tierNumbers === undefined ? own : { ...own, ...tierNumbers }) as PolicyOptions;
    const label = tierNumbers === undefined ? `policy "${name}"` : `policy "${name}" tier "${tier}"`;
    const failMode = p.failMode ?? d.failMode;
    if (failMode !== 'open' && failMode !== 'closed' && failMode !== 'local')
      refuse(`policy "${name}": failMode`, '"open", "closed" or "local"', failMode);
    const key = p.key ?? d.key;
    let identity: IdentityOf;
    if (typeof key === 'function') identity = identities.custom(key);
    else if (key === 'ip' || key === 'principal' || key === 'credential') identity = identities.builtIn[key];
    else refuse(`policy "${name}": key`, '"ip", "principal", "credential" or a function', key);
    let allowed: AllowedTest | undefined;
    if (p.allow !== undefined) {
      if (!Array.isArray(p.allow) || p.allow.some((e) => typeof e !== 'string' || e === '')) {
        refuse(`policy "${name}": allow`, 'a list of addresses, ranges or identities', p.allow);
      }
      allowed = allowList(p.allow, typeof key === 'function' ? key : identities.raw[key]);
    }
    const mode = p.mode ?? 'enforce';
    if (mode !== 'enforce' && mode !== 'shadow') refuse(`policy "${name}": mode`, '"enforce" or "shadow"', mode);
    const algorithm = algorithmOf(p.algorithm);
    if (algorithm === undefined)
      refuse(
        `policy "${name}": algorithm`,
        Object.keys(ALGORITHMS)
          .map((a) => `"${a}"`)
          .join(', '),
        (p as { algorithm?: unknown }).algorithm,
      );
    // A tier's numbers were merged into `p`; a surface's apply only to a token bucket's own numbers.
    const c = algorithm.compile(p, { name, label, tier: tierNumbers, surface, canRelease: options.canRelease !== false });
    const cost = p.cost ?? 1;
    if (typeof cost !== 'function' && (!Number.isInteger(cost) || cost < 1 || cost > c.capacity)) {
      refuse(`${label}: cost`, `a positive integer no larger than ${c.capacity} (the bucket), or a function`, cost);
    }
    const settle = settlerOf(label, p.settle);
    if (settle !== undefined && p.algorithm === 'concurrency')
      invalid(
        'policies',
        `policy "${name}": settle is for every algorithm but concurrency (a concurrency slot is given back when the request ends)`,
      );
    if (settle !== undefined && options.canAdjust === false) invalid('policies', `policy "${name}": settle needs a store with adjust()`);
    return {
      ...(settle === undefined ? {} : { settle }),
      name,
      keyName: c.surfaceOwn === true && surface !== undefined ? `${name}@${surface.surfaceId}` : name,
      algorithm: p.algorithm,
      check: c.check,
      cost,
      capacity: c.capacity,
      allowed,
      shadow: options.shadow || mode === 'shadow',
      failMode,
      identity,
      keyKind: typeof key === 'function' ? 'custom' : key,
      header: { name, quota: c.capacity, windowSeconds: c.windowSeconds, ...(settle === undefined ? {} : { settles: true }) },
    };
  }

  return (name, surface, tier) => {
    const c = compileNumbers(name, surface, tier);
    const own = options.policies[name];
    const penalty = penaltyOf(name, own?.penalty);
    const overridable = own?.overrides ?? false;
    if (typeof overridable !== 'boolean') refuse(`policy "${name}": overrides`, 'true or false', overridable);
    if (penalty === undefined && !overridable) return c;
    if (overridable && options.canOverride === false) invalid('policies', `policy "${name}": overrides need a store with setOverride()`);
    const check = c.check;
    const extra = { ...(penalty === undefined ? {} : { penalty }), ...(overridable ? { overridable: true } : {}) };
    // Each call makes a fresh check: the penalty and the flag go on it, no second object.
    return { ...c, overridable, check: (key, cost) => Object.assign(check(key, cost), extra) };
  };
}
