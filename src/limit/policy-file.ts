import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../config';
import type { SurfaceOptions } from './rate-limiter';
import type { PolicyOptions } from './types';

/** Policies and surfaces, as a policies file holds them. */
export interface PolicySet {
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  /** `undefined` when the file lists none (the application keeps its own). */
  readonly surfaces: readonly SurfaceOptions[] | undefined;
}

/**
 * The policies every deployment has without a file: `public` (per IP) and `authenticated`
 * (per principal) token buckets at the default rps/burst; `login_ip` (20 per minute per IP)
 * and `login_credential` (5 per minute per username) sliding windows. All fail closed.
 */
export function defaultPolicies(rps: number, burst: number): Record<string, PolicyOptions> {
  return {
    public: { algorithm: 'token_bucket', rps, burst, key: 'ip', failMode: 'closed' },
    authenticated: { algorithm: 'token_bucket', rps, burst, key: 'principal', failMode: 'closed' },
    login_ip: { algorithm: 'sliding_window', limit: 20, windowSeconds: 60, key: 'ip', failMode: 'closed' },
    login_credential: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60, key: 'credential', failMode: 'closed' },
  };
}

const name = z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/, 'a policy name: lower-case letter, then [a-z0-9_.-], at most 64');
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
  surface_id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a surface id: 1 to 64 of [A-Za-z0-9_.-] (it may become part of a Redis key)'),
  method: z.string().regex(/^([A-Za-z]+|\*)$/, 'an HTTP method or "*"').optional(),
  path: z.string().startsWith('/').max(1024),
  policies: z.array(name).min(1),
  rate_limit_rps: z.number().positive().max(1_000_000).optional(),
  rate_limit_burst: z.number().int().positive().max(1_000_000_000).optional(),
});
const PolicyFile = z.strictObject({
  policies: z.record(name, Policy).optional(),
  surfaces: z.array(Surface).optional(),
});

/**
 * Reads and validates a policies file; its policies replace the defaults of the same name.
 * Every mistake throws `ConfigError` naming `RATE_LIMIT_POLICIES_FILE`, the place in the
 * file and what was expected.
 */
export function loadPolicyFile(path: string, defaults: Readonly<Record<string, PolicyOptions>>): PolicySet {
  const fail = (what: string): never => {
    throw new ConfigError(
      'RATE_LIMIT_POLICIES_FILE',
      `RATE_LIMIT_POLICIES_FILE (${path}): ${what}. Fix: correct the file (see config/policies.example.json) or unset RATE_LIMIT_POLICIES_FILE.`,
    );
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(`is not valid JSON (${(err as Error).message})`);
  }
  const parsed = PolicyFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? 'the top level' : issue.path.join('.');
    return fail(`${where}: ${issue?.message ?? 'invalid'}`);
  }
  const policies: Record<string, PolicyOptions> = { ...defaults };
  for (const [n, p] of Object.entries(parsed.data.policies ?? {})) {
    const { key, failMode, ...numbers } = p;
    policies[n] = { ...numbers, ...(key === undefined ? {} : { key }), ...(failMode === undefined ? {} : { failMode }) } as PolicyOptions;
  }
  const surfaces = parsed.data.surfaces?.map((s, i) => {
    for (const p of s.policies) if (policies[p] === undefined) fail(`surfaces.${i}.policies: unknown policy "${p}"`);
    if (new Set(s.policies).size !== s.policies.length) fail(`surfaces.${i}.policies: a policy is listed twice`);
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
    if (ids.has(s.surface_id)) fail(`surfaces.${i}.surface_id: "${s.surface_id}" is used twice`);
    ids.add(s.surface_id);
  }
  return { policies, surfaces };
}
