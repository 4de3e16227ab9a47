import { z } from 'zod';
import type { SurfaceOptions } from './options';
import { ALGORITHMS, type AlgorithmDefinition } from './algorithms';
import { POLICY_NAME, TIER_NAME } from './compile';
import { SURFACE_ID, surfaceTableProblems } from './surfaces';
import type { PolicyOptions } from './types';

/** Policies and surfaces, as a policies document holds them. */
export interface PolicySet {
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  /** `undefined` when the document lists none (the application keeps its own). */
  readonly surfaces: readonly SurfaceOptions[] | undefined;
}

/** A mistake in a policies document; `path` is where (`surfaces.2.policies`, or `` for the top level). */
export class PolicyError extends TypeError {
  readonly path: string;
  constructor(path: string, problem: string) {
    super(`${path === '' ? 'the top level' : path}: ${problem}`);
    this.name = 'PolicyError';
    this.path = path;
  }
}

const name = z.string().regex(POLICY_NAME, 'a policy name: lower-case letter, then [a-z0-9_.-], at most 64');
const common = {
  key: z.enum(['ip', 'principal', 'credential']).optional(),
  failMode: z.enum(['open', 'closed', 'local']).optional(),
  cost: z.number().int().positive().optional(),
  mode: z.enum(['enforce', 'shadow']).optional(),
  /** Addresses, ranges or identities that skip the policy. */
  allow: z.array(z.string().min(1).max(256)).max(10_000).optional(),
  /** Identities may have their own numbers (RateLimiter.setOverride). */
  overrides: z.boolean().optional(),
  /** Reserve, then settle: only responses of status 400 or more keep their cost. */
  settle: z.literal('failures').optional(),
  /** After `denials` refusals within `withinSeconds`, refused for `blockSeconds`. */
  penalty: z
    .strictObject({
      denials: z.number().int().positive().max(1_000_000),
      withinSeconds: z
        .number()
        .positive()
        .max(86_400 * 31),
      blockSeconds: z
        .number()
        .positive()
        .max(86_400 * 31),
    })
    .optional(),
};
const tierName = z.string().regex(TIER_NAME, 'a tier name: 1 to 64 of [A-Za-z0-9_.-]');

/**
 * A policy of `algorithm` as a document holds it: its row's fields, the fields every policy has,
 * and tiers of the row's tier fields; a cost must fit its bucket, and each tier's.
 */
function policyOf(algorithm: string, definition: AlgorithmDefinition) {
  const tierShape: Record<string, z.ZodType> = {};
  for (const f of definition.tierFields) tierShape[f] = (definition.documentFields[f] as z.ZodType).optional();
  const field = definition.capacityField;
  return z
    .strictObject({
      algorithm: z.literal(algorithm),
      ...definition.documentFields,
      tiers: z.record(tierName, z.strictObject(tierShape)).optional(),
      ...common,
    })
    .superRefine((p, ctx) => {
      const broken = definition.documentRule?.(p);
      if (broken !== undefined) ctx.addIssue({ code: 'custom', path: [broken.field], message: broken.problem });
      const cost = p.cost;
      if (cost === undefined) return;
      const capacity = (p as Record<string, unknown>)[field] as number;
      // A cost larger than the bucket could never be admitted.
      if (cost > capacity) ctx.addIssue({ code: 'custom', path: ['cost'], message: `at most ${capacity} (the bucket)` });
      for (const [tier, t] of Object.entries(p.tiers ?? {})) {
        const own = t[field] as number | undefined;
        if (own !== undefined && cost > own)
          ctx.addIssue({ code: 'custom', path: ['tiers', tier], message: `cost ${cost} is more than this tier's bucket (${own})` });
      }
    });
}
const Policy = z.discriminatedUnion(
  'algorithm',
  Object.entries(ALGORITHMS).map(([algorithm, definition]) => policyOf(algorithm, definition as AlgorithmDefinition)) as [
    ReturnType<typeof policyOf>,
    ...ReturnType<typeof policyOf>[],
  ],
);
const surfaceId = z.string().regex(SURFACE_ID, 'a surface id: 1 to 64 of [A-Za-z0-9_.-] (it may become part of a Redis key)');
const rps = z.number().positive().max(1_000_000);
const burst = z.number().int().positive().max(1_000_000_000);
/** Surface fields once spelled in snake case (0.x): still read, for one release. */
const LEGACY = { surfaceId: 'surface_id', rateLimitRps: 'rate_limit_rps', rateLimitBurst: 'rate_limit_burst' } as const;
const Surface = z
  .strictObject({
    surfaceId: surfaceId.optional(),
    method: z
      .string()
      .regex(/^([A-Za-z]+|\*)$/, 'an HTTP method or "*"')
      .optional(),
    path: z
      .string()
      .startsWith('/')
      .max(1024)
      .regex(/^[^*]*\*?$/, 'an exact path, or a prefix with one "*" at its end'),
    policies: z.array(name),
    exempt: z.boolean().optional(),
    rateLimitRps: rps.optional(),
    rateLimitBurst: burst.optional(),
    [LEGACY.surfaceId]: surfaceId.optional(),
    [LEGACY.rateLimitRps]: rps.optional(),
    [LEGACY.rateLimitBurst]: burst.optional(),
  })
  .superRefine((s, ctx) => {
    for (const [field, old] of Object.entries(LEGACY)) {
      if (s[field as keyof typeof LEGACY] !== undefined && s[old] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [old], message: `${field} and ${old} are the same field: keep ${field}` });
      }
    }
    if (s.surfaceId === undefined && s.surface_id === undefined) ctx.addIssue({ code: 'custom', path: ['surfaceId'], message: 'Required' });
    if (s.exempt === true && s.policies.length > 0)
      ctx.addIssue({ code: 'custom', path: ['policies'], message: 'an exempt surface charges nothing: policies must be []' });
    if (s.exempt !== true && s.policies.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['policies'],
        message: 'at least one policy (or "exempt": true to let its requests through unlimited)',
      });
  });
const PolicyDocument = z.strictObject({
  policies: z.record(name, Policy).optional(),
  surfaces: z.array(Surface).optional(),
});

/** Every mistake of a policies document (none: `set` is what {@link parsePolicySet} returns). */
export interface PolicyCheck {
  readonly errors: readonly PolicyError[];
  readonly set: PolicySet | undefined;
}

/**
 * Checks a policies document (parsed JSON) and collects every mistake, each with its place
 * (what `rampart check-policies` prints). Pure: reading a file is the caller's business.
 */
export function checkPolicySet(document: unknown, defaults: Readonly<Record<string, PolicyOptions>>): PolicyCheck {
  const parsed = PolicyDocument.safeParse(document);
  if (!parsed.success) {
    return { errors: parsed.error.issues.map((issue) => new PolicyError(issue.path.join('.'), issue.message)), set: undefined };
  }
  const errors: PolicyError[] = [];
  const policies: Record<string, PolicyOptions> = { ...defaults };
  for (const [n, p] of Object.entries(parsed.data.policies ?? {})) {
    const { key, failMode, cost, ...numbers } = p;
    policies[n] = {
      ...numbers,
      ...(key === undefined ? {} : { key }),
      ...(failMode === undefined ? {} : { failMode }),
      ...(cost === undefined ? {} : { cost }),
    } as unknown as PolicyOptions;
  }
  const ids = new Set<string>();
  const surfaces = parsed.data.surfaces?.map((s, i) => {
    for (const p of s.policies)
      if (policies[p] === undefined) errors.push(new PolicyError(`surfaces.${i}.policies`, `unknown policy "${p}"`));
    if (new Set(s.policies).size !== s.policies.length) errors.push(new PolicyError(`surfaces.${i}.policies`, 'a policy is listed twice'));
    const surfaceId = (s.surfaceId ?? s.surface_id) as string;
    // The place as the document spells it.
    const field = s.surfaceId === undefined ? LEGACY.surfaceId : 'surfaceId';
    if (ids.has(surfaceId)) errors.push(new PolicyError(`surfaces.${i}.${field}`, `"${surfaceId}" is used twice`));
    ids.add(surfaceId);
    const rateLimitRps = s.rateLimitRps ?? s.rate_limit_rps;
    const rateLimitBurst = s.rateLimitBurst ?? s.rate_limit_burst;
    return {
      surfaceId,
      ...(s.method === undefined ? {} : { method: s.method }),
      path: s.path,
      policies: s.policies,
      ...(s.exempt === undefined ? {} : { exempt: s.exempt }),
      ...(rateLimitRps === undefined ? {} : { rateLimitRps }),
      ...(rateLimitBurst === undefined ? {} : { rateLimitBurst }),
    } satisfies SurfaceOptions;
  });
  if (surfaces !== undefined) for (const problem of surfaceTableProblems(surfaces)) errors.push(new PolicyError('surfaces', problem));
  return errors.length > 0 ? { errors, set: undefined } : { errors, set: { policies, surfaces } };
}

/**
 * Validates a policies document (parsed JSON); its policies replace the `defaults` of the same
 * name. The first mistake throws {@link PolicyError} naming the place in the document and what
 * was expected ({@link checkPolicySet} lists them all).
 */
export function parsePolicySet(document: unknown, defaults: Readonly<Record<string, PolicyOptions>>): PolicySet {
  const { errors, set } = checkPolicySet(document, defaults);
  if (set === undefined) throw errors[0] ?? new PolicyError('', 'invalid');
  return set;
}
