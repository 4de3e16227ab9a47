import { invalid, type SurfaceOptions } from './options';
import type { PolicyOptions } from './types';

/**
 * Refuses a {@link RateLimiter.setPolicies} that would break what runs: dropping a policy that a
 * `limit(...)` handed out, or a kept surface, still names; changing a policy's algorithm (its
 * keys would hold another algorithm's state: on Redis, WRONGTYPE until they expire); leaving
 * `surfaces()` with no surface. Throws an OptionsError naming each.
 */
export function checkPolicySwap(o: {
  readonly before: Readonly<Record<string, PolicyOptions>>;
  readonly after: Readonly<Record<string, PolicyOptions>>;
  /** The policy lists of the `limit(...)` middleware handed out. */
  readonly limits: readonly (readonly string[])[];
  /** The surfaces kept (`undefined`: the call replaces them). */
  readonly keptSurfaces: readonly SurfaceOptions[] | undefined;
  /** `surfaces()` was handed out and the new table is empty. */
  readonly surfacesLeftEmpty: boolean;
}): void {
  const users = new Map<string, string[]>();
  const use = (name: string, user: string) => {
    if (o.after[name] !== undefined) return;
    const list = users.get(name) ?? [];
    list.push(user);
    users.set(name, list);
  };
  for (const names of o.limits) for (const n of names) use(n, `limit(${names.map((x) => JSON.stringify(x)).join(', ')})`);
  for (const s of o.keptSurfaces ?? []) for (const n of s.policies) use(n, `surface "${s.surfaceId}"`);
  if (users.size > 0) {
    const what = [...users].map(([n, u]) => `"${n}" (named by ${u.join(', ')})`).join('; ');
    invalid('policies', `setPolicies would drop ${users.size === 1 ? 'a policy still in use' : 'policies still in use'}: ${what}`);
  }
  for (const [n, p] of Object.entries(o.after)) {
    const before = o.before[n];
    if (before !== undefined && before.algorithm !== p.algorithm)
      invalid(
        'policies',
        `setPolicies cannot change the algorithm of policy "${n}" (${before.algorithm} to ${p.algorithm}): give it a new name`,
      );
  }
  if (o.surfacesLeftEmpty) invalid('surfaces', 'setPolicies would leave surfaces() with no surface to match');
}
