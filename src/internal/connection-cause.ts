/**
 * One failure to reach an address, as a reader wants it named: what happened (`connect
 * ECONNREFUSED`, `getaddrinfo ENOTFOUND`, or an error's own words when it has no errno) and where
 * (`host:port`).
 */
export interface ConnectionFailure {
  readonly what: string;
  readonly where: string | undefined;
  /** `what` is a system call and its errno (`connect ECONNREFUSED`): shown as `what where`, as Node words it. */
  readonly errno: boolean;
}

/** Node's system error codes (`ECONNREFUSED`, `ETIMEDOUT`, `EAI_AGAIN`...). */
const ERRNO = /^E[A-Z0-9_]+$/;

/** An error's text on one line, at most 300 characters. */
export function oneLine(text: string): string {
  const line = text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

/** `host:port`, with an IPv6 address in brackets. */
export function hostPort(host: string, port: number | string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

function failureOf(err: unknown, endpoint: string | undefined): ConnectionFailure {
  if (!(err instanceof Error)) return { what: oneLine(String(err)), where: endpoint, errno: false };
  const e = err as Error & { code?: unknown; syscall?: unknown; address?: unknown; port?: unknown; hostname?: unknown };
  if (typeof e.code === 'string' && ERRNO.test(e.code) && typeof e.syscall === 'string') {
    // Where it was tried (a name resolved to this address), else where it was meant to go.
    const where =
      typeof e.address === 'string' && (typeof e.port === 'number' || typeof e.port === 'string')
        ? hostPort(e.address, e.port)
        : (endpoint ?? (typeof e.hostname === 'string' ? e.hostname : undefined));
    return { what: `${e.syscall} ${e.code}`, where, errno: true };
  }
  const what = oneLine(e.message) || (typeof e.code === 'string' ? e.code : e.name);
  return { what, where: endpoint, errno: false };
}

/**
 * The failures behind `err`, an error met while connecting to `endpoint` (`host:port`, when
 * known): one, or each address's of an `AggregateError` (Node trying every address of a name,
 * whose own message is empty).
 */
export function connectionFailures(err: unknown, endpoint?: string): ConnectionFailure[] {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map((e: unknown) => failureOf(e, endpoint));
  return [failureOf(err, endpoint)];
}

/**
 * Failures as one line, the same failure at several addresses said once: `connect ECONNREFUSED
 * 127.0.0.1:7000, 127.0.0.1:7001; Connection is closed. (127.0.0.1:7002)`.
 */
export function describeFailures(failures: readonly ConnectionFailure[]): string {
  const groups = new Map<string, { errno: boolean; where: string[] }>();
  for (const f of failures) {
    const key = `${f.errno ? 1 : 0}${f.what}`;
    let g = groups.get(key);
    if (g === undefined) {
      g = { errno: f.errno, where: [] };
      groups.set(key, g);
    }
    if (f.where !== undefined && !g.where.includes(f.where)) g.where.push(f.where);
  }
  const parts: string[] = [];
  for (const [key, g] of groups) {
    const what = key.slice(1);
    if (g.where.length === 0) parts.push(what);
    else parts.push(g.errno ? `${what} ${g.where.join(', ')}` : `${what} (${g.where.join(', ')})`);
  }
  return parts.join('; ');
}

/**
 * A one-line cause for an error met reaching a dependency: its errno and the address it failed
 * at (`connect ECONNREFUSED 127.0.0.1:5432`, `getaddrinfo ENOTFOUND db.internal:5432`),
 * or, for an error without an errno, its message and the address (`timeout exceeded when trying
 * to connect (127.0.0.1:5432)`). `endpoint` is the `host:port` the caller meant to reach.
 */
export function describeConnectionError(err: unknown, endpoint?: string): string {
  return describeFailures(connectionFailures(err, endpoint));
}
