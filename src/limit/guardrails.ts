import type { Request } from 'express';

/**
 * Why a request's forwarding header did not name its client:
 * - `trust_proxy_off`: `X-Forwarded-For` or `Forwarded` arrived while Express's `trust proxy` is
 *   off, so every client behind that proxy is keyed by the proxy's address;
 * - `untrusted_peer`: `trust proxy` is on, but the peer that sent the header is not a proxy it
 *   trusts (the header is ignored: the peer is the client);
 * - `forwarded_ignored`: a trusted proxy sent only `Forwarded` (RFC 7239), which Express never
 *   reads: `req.ip` is the proxy's address.
 */
export type ForwardingProblem = 'trust_proxy_off' | 'untrusted_peer' | 'forwarded_ignored';

/** Every {@link ForwardingProblem}, for counters that start at 0. */
export const FORWARDING_PROBLEMS: readonly ForwardingProblem[] = ['trust_proxy_off', 'untrusted_peer', 'forwarded_ignored'];

/** A misconfiguration the limiter noticed, said once per code (see `RateLimiterOptions.onWarning`). */
export interface RateLimiterWarning {
  /** `RAMPART_FORWARDED_<problem>`, upper-case. */
  readonly code: string;
  readonly message: string;
}

type TrustFunction = (address: string, hop: number) => boolean;

function messageOf(problem: ForwardingProblem, peer: string): string {
  if (problem === 'trust_proxy_off')
    return `rate limiter: X-Forwarded-For or Forwarded arrived (from ${peer}) while Express's "trust proxy" is off: every client behind that proxy shares the proxy's bucket. Fix: set "trust proxy" (the sample API: TRUST_PROXY) to your proxies' addresses or ranges; if clients reach the app directly, they sent it themselves and it is ignored.`;
  if (problem === 'untrusted_peer')
    return `rate limiter: X-Forwarded-For or Forwarded arrived from ${peer}, which "trust proxy" (TRUST_PROXY) does not trust: the header is ignored and ${peer} is keyed as the client. Fix: add that proxy's address or range to "trust proxy" if it is yours.`;
  return `rate limiter: a trusted proxy (${peer}) sent Forwarded without X-Forwarded-For; Express reads only X-Forwarded-For, so every client behind it shares the proxy's bucket. Fix: have the proxy send X-Forwarded-For.`;
}

/**
 * The forwarding check of every limited request: a request carrying `X-Forwarded-For` or
 * `Forwarded` whose client address the app's `trust proxy` did not take from it is counted
 * (`count`, every time) and said once per problem (`warn`). Costs two header lookups when the
 * headers are absent.
 */
export function forwardingCheck(count: ((problem: ForwardingProblem) => void) | undefined, warn: (w: RateLimiterWarning) => void) {
  const said = new Set<ForwardingProblem>();
  return (req: Request): void => {
    const headers = req.headers;
    const xff = headers['x-forwarded-for'];
    if (xff === undefined && headers['forwarded'] === undefined) return;
    const app = req.app as { get?: (setting: string) => unknown } | undefined;
    const trust = app?.get?.('trust proxy fn') as TrustFunction | undefined;
    const peer = req.socket?.remoteAddress ?? 'unknown';
    let problem: ForwardingProblem;
    if (trust?.(peer, 0) === true) {
      if (xff !== undefined) return;
      problem = 'forwarded_ignored';
    } else problem = app?.get?.('trust proxy') ? 'untrusted_peer' : 'trust_proxy_off';
    count?.(problem);
    if (said.has(problem)) return;
    said.add(problem);
    warn({ code: `RAMPART_FORWARDED_${problem.toUpperCase()}`, message: messageOf(problem, peer) });
  };
}
