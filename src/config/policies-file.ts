import { readFileSync } from 'node:fs';
import { checkPolicySet, type PolicyError, type PolicyOptions, type PolicySet } from '../limit';
import { ConfigError } from './variables';

/** `auth_ip` allows this many times `public`'s numbers: every authenticated request from an address pays it. */
export const AUTH_IP_FACTOR = 5;

/**
 * The policies every deployment has without a file: `public` (per IP) and `authenticated`
 * (per principal) token buckets at `RATE_LIMIT_DEFAULT_RPS` / `RATE_LIMIT_DEFAULT_BURST`;
 * `login_ip` (20 per minute per IP) and `login_credential` (5 failed logins per minute per
 * username: `settle: 'failures'` gives a successful login's reservation back) sliding windows; `auth_ip` (per IP, {@link AUTH_IP_FACTOR} times `public`), charged before a bearer
 * token is looked up. All fail closed.
 */
export function defaultPolicies(rps: number, burst: number): Record<string, PolicyOptions> {
  return {
    public: { algorithm: 'token_bucket', rps, burst, key: 'ip', failMode: 'closed' },
    authenticated: { algorithm: 'token_bucket', rps, burst, key: 'principal', failMode: 'closed' },
    login_ip: { algorithm: 'sliding_window', limit: 20, windowSeconds: 60, key: 'ip', failMode: 'closed' },
    login_credential: {
      algorithm: 'sliding_window',
      limit: 5,
      windowSeconds: 60,
      key: 'credential',
      failMode: 'closed',
      settle: 'failures',
    },
    auth_ip: { algorithm: 'token_bucket', rps: rps * AUTH_IP_FACTOR, burst: burst * AUTH_IP_FACTOR, key: 'ip', failMode: 'closed' },
  };
}

/**
 * Reads `RATE_LIMIT_POLICIES_FILE` and validates it (`checkPolicySet`); its policies replace
 * the defaults of the same name. Its mistakes, all of them, throw one `ConfigError` naming the
 * variable, each place in the file and what was expected.
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
  // Every mistake at once, as `rampart check-policies` lists them: one start tells all there is to fix.
  const { errors, set } = checkPolicySet(json, defaults);
  if (set !== undefined) return set;
  return fail(
    errors.length === 1 ? (errors[0] as PolicyError).message : `${errors.length} mistakes: ${errors.map((e) => e.message).join('; ')}`,
  );
}
