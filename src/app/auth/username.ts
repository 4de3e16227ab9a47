import { z } from 'zod';

/** A username as accounts are stored and looked up: exactly these characters, compared as is. */
export const Username = z
  .string()
  .min(3)
  .max(64)
  .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only');

/**
 * The rate limiter's credential for a login: the body's username as the account lookup will use
 * it, letter case folded (every spelling that reaches one account shares its bucket; `Alice` and
 * `alice`, two accounts, share one too), or none (the limiter then keys by address) when the
 * lookup would refuse the name before any password is checked. Nothing else the caller sends (a
 * header, another field) names a bucket.
 */
export function loginCredential(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const parsed = Username.safeParse((body as { username?: unknown }).username);
  return parsed.success ? parsed.data.toLowerCase() : undefined;
}
