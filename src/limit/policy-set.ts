import { z } from 'zod';
import type { SurfaceOptions } from './options';
import { POLICY_NAME } from './plan';
import { SURFACE_ID } from './surfaces';
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
  failMode: z.enum(['open', 'closed']).optional(),
};
const Policy = z.discriminatedUnion('algorithm', [
  z.strictObject({
    algorithm: z.literal('token_bucket'),
    rps: z.number().positive().max(1_000_000),
    burst: z.number().int().positive().max(1_000_000_000),
    ...common,
  }),
  z.strictObject({
    algorithm: z.literal('sliding_window'),
    limit: z.number().int().positive().max(100_000),
    windowSeconds: z.number().positive().max(86_400 * 31),
    ...common,
  }),
]);
const Surface = z.strictObject({
  surface_id: z.string().regex(SURFACE_ID, 'a surface id: 1 to 64 of [A-Za-z0-9_.-] (it may become part of a Redis key)'),
  method: z.string().regex(/^([A-Za-z]+|\*)$/, 'an HTTP method or "*"').optional(),
  path: z.string().startsWith('/').max(1024),
  policies: z.array(name).min(1),
  rate_limit_rps: z.number().positive().max(1_000_000).optional(),
  rate_limit_burst: z.number().int().positive().max(1_000_000_000).optional(),
});
const PolicyDocument = z.strictObject({
  policies: z.record(name, Policy).optional(),
  surfaces: z.array(Surface).optional(),
});

/**
 * Validates a policies document (parsed JSON); its policies replace the `defaults` of the same
 * name. A mistake throws {@link PolicyError} naming the place in the document and what was
 * expected. Pure: reading a file is the caller's business (`loadPolicyFile`).
 */
export function parsePolicySet(document: unknown, defaults: Readonly<Record<string, PolicyOptions>>): PolicySet {
  const parsed = PolicyDocument.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PolicyError(issue?.path.join('.') ?? '', issue?.message ?? 'invalid');
  }
  const policies: Record<string, PolicyOptions> = { ...defaults };
  for (const [n, p] of Object.entries(parsed.data.policies ?? {})) {
    const { key, failMode, ...numbers } = p;
    policies[n] = { ...numbers, ...(key === undefined ? {} : { key }), ...(failMode === undefined ? {} : { failMode }) } as PolicyOptions;
  }
  const surfaces = parsed.data.surfaces?.map((s, i) => {
    for (const p of s.policies) if (policies[p] === undefined) throw new PolicyError(`surfaces.${i}.policies`, `unknown policy "${p}"`);
    if (new Set(s.policies).size !== s.policies.length) throw new PolicyError(`surfaces.${i}.policies`, 'a policy is listed twice');
    const { method, rate_limit_rps, rate_limit_burst, ...rest } = s;
    return {
      ...rest,
      ...(method === undefined ? {} : { method }),
      ...(rate_limit_rps === undefined ? {} : { rate_limit_rps }),
      ...(rate_limit_burst === undefined ? {} : { rate_limit_burst }),
    } satisfies SurfaceOptions;
  });
  const ids = new Set<string>();
  for (const [i, s] of (surfaces ?? []).entries()) {
    if (ids.has(s.surface_id)) throw new PolicyError(`surfaces.${i}.surface_id`, `"${s.surface_id}" is used twice`);
    ids.add(s.surface_id);
  }
  return { policies, surfaces };
}
