import type { Response } from 'express';

/**
 * Which form of the IETF RateLimit header fields to send:
 * - `draft-10` (current, RFC 9651 structured fields): `RateLimit-Policy: "name";q=10;w=2` and
 *   `RateLimit: "name";r=7;t=1`, one list member per policy;
 * - `draft-7`: `RateLimit: limit=10, remaining=7, reset=1` and `RateLimit-Policy: 10;w=2`;
 * - `draft-6`: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`;
 * - `false`: none (`Retry-After` is still sent on 429).
 * The older forms describe the policy with the fewest requests remaining.
 */
export type HeaderForm = 'draft-10' | 'draft-7' | 'draft-6' | false;

/** What the headers need to know about one policy, fixed at start-up. */
export interface HeaderPolicy {
  readonly name: string;
  /** Quota: burst of a token bucket, limit of a sliding window. */
  readonly quota: number;
  /** Window in whole seconds: time to refill the burst, or the sliding window. */
  readonly windowSeconds: number;
  /** The policy reserves its cost and settles it when the response ends (`settle`): `c` says what was reserved. */
  readonly settles?: boolean;
}

/**
 * Writes the RateLimit headers of one decision. `remaining[i]` and `resetUs[i]` belong to
 * `policies[i]`; `policyHeader` is the precomputed `RateLimit-Policy` value (see
 * {@link policyHeaderValue}). `reserved[i]`, when given, is what the request reserved under
 * `policies[i]`; the `draft-10` form says it as the member's `c` parameter for a policy that
 * settles later.
 */
export type HeaderWriter = (
  res: Response,
  policyHeader: string,
  policies: readonly HeaderPolicy[],
  remaining: readonly number[],
  resetUs: readonly number[],
  reserved?: readonly number[],
) => void;

const seconds = (us: number) => Math.max(0, Math.ceil(us / 1_000_000));

function tightest(remaining: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < remaining.length; i++) if ((remaining[i] as number) < (remaining[best] as number)) best = i;
  return best;
}

/** The `RateLimit-Policy` value of a set of policies in a form; computed once per route. */
export function policyHeaderValue(form: HeaderForm, policies: readonly HeaderPolicy[], tight = 0): string {
  if (form === 'draft-10') return policies.map((p) => `"${p.name}";q=${p.quota};w=${p.windowSeconds}`).join(', ');
  const p = policies[tight] as HeaderPolicy;
  return `${p.quota};w=${p.windowSeconds}`;
}

const WRITERS: Readonly<Record<Exclude<HeaderForm, false>, HeaderWriter>> = {
  'draft-10'(res, policyHeader, policies, remaining, resetUs, reserved) {
    let value = '';
    for (let i = 0; i < policies.length; i++) {
      if (i > 0) value += ', ';
      const p = policies[i] as HeaderPolicy;
      value += `"${p.name}";r=${Math.max(0, remaining[i] as number)};t=${seconds(resetUs[i] as number)}`;
      if (reserved !== undefined && p.settles === true) value += `;c=${reserved[i] as number}`;
    }
    res.setHeader('RateLimit-Policy', policyHeader);
    res.setHeader('RateLimit', value);
  },
  'draft-7'(res, _policyHeader, policies, remaining, resetUs) {
    const i = tightest(remaining);
    const p = policies[i] as HeaderPolicy;
    res.setHeader('RateLimit-Policy', `${p.quota};w=${p.windowSeconds}`);
    res.setHeader(
      'RateLimit',
      `limit=${p.quota}, remaining=${Math.max(0, remaining[i] as number)}, reset=${seconds(resetUs[i] as number)}`,
    );
  },
  'draft-6'(res, _policyHeader, policies, remaining, resetUs) {
    const i = tightest(remaining);
    const p = policies[i] as HeaderPolicy;
    res.setHeader('RateLimit-Policy', `${p.quota};w=${p.windowSeconds}`);
    res.setHeader('RateLimit-Limit', String(p.quota));
    res.setHeader('RateLimit-Remaining', String(Math.max(0, remaining[i] as number)));
    res.setHeader('RateLimit-Reset', String(seconds(resetUs[i] as number)));
  },
};

/** The writer of a header form; `undefined` for `false`. */
export function headerWriter(form: HeaderForm): HeaderWriter | undefined {
  return form === false ? undefined : WRITERS[form];
}
