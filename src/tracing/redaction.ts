import type { Attributes, AttributeValue } from '@opentelemetry/api';

// One set of rules for everything that leaves the process: span attributes (through
// redactAttributes and the exporter) and the sample API's request log (through redactUrl and
// redactHeaders). What a client sends is judged by its structure, the way a server reads it,
// not by a list of parameter names:
// - a query is split on every `&` and `;`; every value is dropped; a name is kept only when it
//   is a plain short identifier that holds no credential, else it is dropped too;
// - a path is cut into segments, each decoded (bad percent-encoding included) and dropped whole
//   when it holds a credential's shape or something that reads as a query;
// - userinfo and fragments are dropped;
// - a credential header is dropped whole, a header holding a URL gets the URL rules, any other
//   header value is scrubbed.

/** What a redacted value becomes. */
export const REDACTED = '[REDACTED]';

// Keys whose value is never exported, whatever it looks like.
const SECRET_KEY = /signature|token|secret|nonce|password|passwd|api[_-]?key|authorization|cookie|credential|session/i;
const SECRET_FIELDS = new Set(['header_b64u', 'ciphertext_b64u', 'ciphertext_hash']);
const HEADER_KEY = /^http\.(?:request|response)\.header\./;
// `url.query` holds a query (no `?`), `url.path` a path; these hold a whole URL or request target.
const URL_KEYS = new Set(['url.full', 'http.url', 'http.target']);
// Keys holding SQL: literals are dropped.
const SQL_KEYS = new Set(['db.query.text', 'db.statement']);
// Keys holding a Redis command line: only the command name is kept.
const REDIS_KEYS = new Set(['db.query.text', 'db.statement']);

// Values that look like credentials wherever they appear inside a string.
const VALUE_PATTERNS: readonly RegExp[] = [
  /\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=-]{4,}/gi,
  /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, // JWT
  /\b(sk|pk|rk|ak|api|key|rmp|ghp|gho|xox[abp])[_-](live_|test_)?[A-Za-z0-9_-]{12,}/gi, // API-key shapes
  /\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, // AWS access key id
  /\b[A-Fa-f0-9]{40,}\b/g, // long hex secrets
  /\b(?=[A-Za-z0-9_+-]*\d)(?=[A-Za-z0-9_+-]*[A-Za-z])[A-Za-z0-9_+-]{40,}={0,2}/g, // long base64 secrets
  /((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;]+)/gi, // key=value pairs
];

// No pattern can match a string shorter than this (the shortest, a JWT, needs 13 characters)
// unless it holds whitespace, `=` or `:`.
const SHORTEST_MATCH = 13;
const MATCH_CHARACTERS = /[\s=:]/;

/** Replaces credential-looking substrings of `value` with `[REDACTED]`. */
export function scrubString(value: string): string {
  // Most attribute values are short words, paths and numbers: no pattern needs running.
  if (value.length < SHORTEST_MATCH && !MATCH_CHARACTERS.test(value)) return value;
  let out = value;
  for (const p of VALUE_PATTERNS) {
    p.lastIndex = 0;
    out = out.replace(p, (_match: string, prefix?: string) =>
      // For key=value pairs keep the key, so the reader knows what was hidden.
      typeof prefix === 'string' && p.source.startsWith('((?:password') ? `${prefix}${REDACTED}` : REDACTED,
    );
  }
  return out;
}

// --- Tokens: a path segment, a parameter name, a host, a trace-state value -----------------

// Credential shapes found wherever they start inside a token, glued to other text or not.
const TOKEN_SHAPES: readonly RegExp[] = [
  /(?:Bearer|Basic|Digest|Negotiate|Token)[\s+]+\S/i, // an Authorization value, space encoded or not
  /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\./, // JWT (header.payload.)
  /rmp_[A-Za-z0-9_-]{16,}/i, // the sample API's bearer tokens
  /(?<![A-Za-z0-9])(?:sk|pk|rk|ak|ghp|gho|ghs|ghu|xox[abpr])[_-](?:live_|test_)?[A-Za-z0-9_-]{12,}/i,
  /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}/,
];
// Runs of base64 / base64url / hex characters, and what in them is not a secret: UUIDs (ids,
// not credentials) and slugs (lowercase words and short numbers).
const RUN = /[A-Za-z0-9_+/=~-]{20,}/g;
const UUID = /[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}/g;
const SLUG = /^(?:[a-z]{1,15}|[0-9]{1,4})(?:[-_](?:[a-z]{1,15}|[0-9]{1,4}))*$/;
const DIGIT = /[0-9]/;
const LOWER = /[a-z]/;
const UPPER = /[A-Z]/;

/** A random-looking run: 32+ characters, or 20+ mixing digits, lower and upper case. */
function hasRandomRun(token: string): boolean {
  const s = token.length >= 36 && token.includes('-') ? token.replace(UUID, ' ') : token;
  RUN.lastIndex = 0;
  for (let m = RUN.exec(s); m !== null; m = RUN.exec(s)) {
    const run = m[0];
    if (SLUG.test(run)) continue;
    if (run.length >= 32 || (DIGIT.test(run) && LOWER.test(run) && UPPER.test(run))) return true;
  }
  return false;
}

/**
 * Percent-decoded, up to three times (`%2520` is a space encoded twice); a malformed escape
 * never throws: the escapes that are well formed are decoded one byte each.
 */
function decodeComponent(s: string): string {
  let out = s;
  for (let i = 0; i < 3 && out.includes('%'); i++) {
    let next: string;
    try {
      next = decodeURIComponent(out);
    } catch {
      next = out.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
    if (next === out) break;
    out = next;
  }
  return out;
}

/**
 * Whether a token (a path segment, a parameter name, a host, a trace-state value; decoded or
 * percent-encoded) holds a credential: an Authorization value (`Bearer x`, `Basic x`), a JWT, an API
 * key's shape (`rmp_…`, `sk_live_…`, `AKIA…`), anything {@link scrubString} finds, or a run of
 * random-looking base64 or hex characters (32+, or 20+ mixing digits and both cases; UUIDs and
 * lowercase slugs are not).
 */
export function looksLikeCredential(token: string): boolean {
  if (token.length < 7) return false;
  if (holdsShape(token)) return true;
  // Percent-encoded (`Bearer%20…`), the shape shows once decoded.
  if (!token.includes('%')) return false;
  const decoded = decodeComponent(token);
  return decoded !== token && holdsShape(decoded);
}

function holdsShape(token: string): boolean {
  for (const p of TOKEN_SHAPES) if (p.test(token)) return true;
  return scrubString(token) !== token || hasRandomRun(token);
}

// --- Paths ----------------------------------------------------------------------------------

// A path needs a look only when it holds one of these: an escape, a `+`, query or fragment
// characters, an authority (`//`, `@`, `:`), whitespace, a JWT's start, or a segment long
// enough to hold a key. Most paths (`/v1/status`) hold none and are returned as they are.
const PATH_LOOK = /[%+?#&;=@:\\\s]|eyJ|[^/]{15,}/;
// A segment that, decoded, reads as a query or a fragment.
const QUERYISH = /[?#&;=]/;
// `scheme://authority` or `//authority` at the start of a request target or URL.
const AUTHORITY = /^(?:[A-Za-z][A-Za-z0-9+.-]*:)?[/\\]{2}([^/\\?#]*)/;

/** `[REDACTED]` when the segment (raw, percent-encoded) holds a credential or a query, else the segment. */
export function redactPathSegment(segment: string): string {
  if (segment === '') return segment;
  const decoded = decodeComponent(segment);
  if (QUERYISH.test(decoded) || looksLikeCredential(decoded)) return REDACTED;
  // Some servers read `+` in a path as a space.
  if (decoded.includes('+') && looksLikeCredential(decoded.replace(/\+/g, ' '))) return REDACTED;
  return segment;
}

function redactSegments(path: string): string {
  if (path === '' || !PATH_LOOK.test(path)) return path;
  const segments = path.split('/');
  let changed = false;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] as string;
    const r = redactPathSegment(s);
    if (r !== s) {
      segments[i] = r;
      changed = true;
    }
  }
  return changed ? segments.join('/') : path;
}

/**
 * A path (`url.path`, or the part of a URL before its `?`) redacted: each segment is decoded
 * and becomes `[REDACTED]` when it holds a credential or reads as a query (see
 * {@link redactPathSegment}). A request target in absolute form (`http://user:pw@host/x`) has
 * its userinfo dropped and its host judged like a segment; a `?` or `#` in it gets the
 * {@link redactUrl} rules. Returns `path` itself when nothing changes.
 */
export function redactPath(path: string): string {
  if (!PATH_LOOK.test(path)) return path;
  // A query or a fragment has no place in a path: the URL rules apply from there on.
  if (path.includes('?') || path.includes('#')) return redactUrl(path);
  const m = AUTHORITY.exec(path);
  if (m === null) return redactSegments(path);
  const authority = m[1] as string;
  const at = authority.lastIndexOf('@');
  const host = at === -1 ? authority : authority.slice(at + 1);
  const safeHost = looksLikeCredential(decodeComponent(host)) ? REDACTED : host;
  const rest = path.slice(m[0].length);
  const safeRest = redactSegments(rest);
  if (at === -1 && safeHost === host && safeRest === rest) return path;
  const head = path.slice(0, m[0].length - authority.length);
  return `${head}${at === -1 ? '' : `${REDACTED}@`}${safeHost}${safeRest}`;
}

// --- Queries --------------------------------------------------------------------------------

// A name kept as it is: a plain short identifier (once decoded).
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_.[\]-]{0,31}$/;

function isPlainName(raw: string): boolean {
  const name = raw.includes('%') || raw.includes('+') ? decodeComponent(raw.replace(/\+/g, ' ')) : raw;
  return PLAIN_NAME.test(name) && !looksLikeCredential(name);
}

function redactParameter(part: string): string {
  if (part === '') return part;
  const eq = part.indexOf('=');
  const name = eq === -1 ? part : part.slice(0, eq);
  const safeName = name === '' || isPlainName(name) ? name : REDACTED;
  return eq === -1 ? safeName : `${safeName}=${REDACTED}`;
}

/**
 * A query string (without its `?`) redacted the way a server parses it: split on every `&` and
 * `;`, each value `[REDACTED]` (whatever it holds: `/`, `=`, `?`, escapes), each name kept
 * only when it is a plain short identifier (`[A-Za-z_][A-Za-z0-9_.[\]-]{0,31}` once decoded)
 * holding no credential, else `[REDACTED]`; bare names (no `=`) and repeated names alike.
 * Returns `query` itself when nothing changes (only plain bare names).
 */
export function redactQueryString(query: string): string {
  let out = '';
  let changed = false;
  let start = 0;
  for (let i = 0; i <= query.length; i++) {
    const c = query.charCodeAt(i); // NaN past the end
    if (c === 0x26 /* & */ || c === 0x3b /* ; */ || i === query.length) {
      const part = query.slice(start, i);
      const safe = redactParameter(part);
      if (safe !== part) changed = true;
      out += i === query.length ? safe : `${safe}${query[i] as string}`;
      start = i + 1;
    }
  }
  return changed ? out : query;
}

/**
 * A URL or request target (`https://u:p@host/a/b?x=1#f`, `/a/b?x=1`) redacted: userinfo
 * dropped, the path by {@link redactPath}, the query (from the first `?`) by
 * {@link redactQueryString}, the fragment dropped. Returns `url` itself when nothing changes.
 */
export function redactUrl(url: string): string {
  const hash = url.indexOf('#');
  const q = url.indexOf('?');
  if (q === -1 && hash === -1) return redactPath(url);
  const end = hash === -1 ? url.length : hash;
  const hasQuery = q !== -1 && q < end;
  const base = url.slice(0, hasQuery ? q : end);
  const safeBase = redactPath(base);
  const query = hasQuery ? url.slice(q + 1, end) : '';
  const safeQuery = hasQuery ? redactQueryString(query) : '';
  if (hash === -1 && safeBase === base && safeQuery === query) return url;
  return hasQuery ? `${safeBase}?${safeQuery}` : safeBase;
}

// --- Headers --------------------------------------------------------------------------------

// Headers whose value is a credential, or is what an untrusted caller controls entirely and
// nothing reads back (trace state and baggage are honoured only from trusted peers).
const CREDENTIAL_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'apikey',
  'x-auth-token',
  'x-access-token',
  'x-csrf-token',
  'x-xsrf-token',
  'x-amz-security-token',
  'tracestate',
  'baggage',
]);
const CREDENTIAL_HEADER_NAME =
  /token|secret|passw|pwd|api[_-]?key|(?:^|[-_])key$|auth(?!ority)|cookie|credential|session|signature|nonce|csrf|xsrf|jwt|bearer/i;
// Headers whose value is a URL.
const URL_HEADERS = new Set([
  'referer',
  'referrer',
  'location',
  'content-location',
  'origin',
  'x-forwarded-uri',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
]);

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Whether a header (any case) carries a credential: its value is never written anywhere. */
export function isCredentialHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return CREDENTIAL_HEADERS.has(lower) || CREDENTIAL_HEADER_NAME.test(lower);
}

/**
 * One header value redacted: `[REDACTED]` for a credential header (`Authorization`,
 * `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `X-API-Key`, `tracestate`, `baggage`, and
 * any name matching token, secret, password, key, auth, cookie, session, signature...); the
 * URL rules for a header holding a URL (`Referer`, `Location`...); else scrubbed.
 */
export function redactHeader(name: string, value: string): string {
  if (isCredentialHeader(name)) return REDACTED;
  const lower = name.toLowerCase();
  if (URL_HEADERS.has(lower)) return redactUrl(value);
  // A well-formed traceparent is ids and flags only (it would read as a long random run).
  if (lower === 'traceparent') return TRACEPARENT.test(value) ? value : REDACTED;
  return scrubString(value);
}

/**
 * A headers object (`req.headers`, `res.getHeaders()`) redacted by {@link redactHeader},
 * arrays item by item; a header whose name itself holds a credential is renamed
 * `[REDACTED]`. Always a new object.
 */
export function redactHeaders(headers: Readonly<Record<string, unknown>>): Record<string, unknown> {
  // No prototype: a header named `__proto__` stays a header.
  const out = Object.create(null) as Record<string, unknown>;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    const safeName = name.length >= 15 && looksLikeCredential(name) ? REDACTED : name;
    if (safeName !== name || isCredentialHeader(name)) out[safeName] = REDACTED;
    else if (typeof value === 'string') out[name] = redactHeader(name, value);
    else if (Array.isArray(value)) out[name] = value.map((v: unknown) => (typeof v === 'string' ? redactHeader(name, v) : v));
    else out[name] = value;
  }
  return out;
}

// --- Attributes -----------------------------------------------------------------------------

/** SQL with string and numeric literals replaced by `?`. */
export function scrubSql(sql: string): string {
  return sql
    .replace(/'(?:[^']|'')*'/g, '?')
    .replace(/\$[A-Za-z_]*\$[\s\S]*?\$[A-Za-z_]*\$/g, '?')
    .replace(/\b\d+(\.\d+)?\b/g, (m, _f, offset: number, whole: string) => (whole[offset - 1] === '$' ? m : '?'));
}

// `http.request.header.<name>` / `http.response.header.<name>`: the header rule.
function redactHeaderAttribute(key: string, value: AttributeValue): AttributeValue {
  const name = key.slice(key.indexOf('.header.') + 8);
  if (isCredentialHeader(name)) return REDACTED;
  if (typeof value === 'string') return redactHeader(name, value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? redactHeader(name, v) : v)) as AttributeValue;
  return value;
}

function redactValue(key: string, value: AttributeValue, system: string | undefined): AttributeValue {
  if (SECRET_FIELDS.has(key) || SECRET_KEY.test(key)) return REDACTED;
  if (HEADER_KEY.test(key)) return redactHeaderAttribute(key, value);
  if (typeof value === 'string') {
    if (key === 'url.query') return redactQueryString(value);
    if (key === 'url.path') return redactPath(value);
    if (URL_KEYS.has(key)) return redactUrl(value);
    if (key === 'url.fragment') return value === '' ? value : REDACTED;
    if (REDIS_KEYS.has(key) && system === 'redis') return value.split(' ')[0] ?? '';
    if (SQL_KEYS.has(key)) return scrubString(scrubSql(value));
    return scrubString(value);
  }
  if (Array.isArray(value)) {
    return value.map((v) => (typeof v === 'string' ? scrubString(v) : v)) as AttributeValue;
  }
  return value;
}

/**
 * The attributes redacted: a copy when anything changes (the input is never touched), else the
 * input itself, so that a span with nothing to hide costs no copy.
 */
export function redactAttributes(attributes: Attributes): Attributes {
  const system = (attributes['db.system.name'] ?? attributes['db.system']) as string | undefined;
  let out: Attributes | undefined;
  const keys = Object.keys(attributes);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const value = attributes[key];
    const redacted = value === undefined ? undefined : redactValue(key, value, system);
    if (out === undefined) {
      if (redacted === value || (Array.isArray(value) && sameItems(value, redacted))) continue;
      // No prototype: an attribute named `__proto__` stays an attribute.
      out = Object.create(null) as Attributes;
      for (let j = 0; j < i; j++) out[keys[j] as string] = attributes[keys[j] as string];
    }
    if (redacted !== undefined) out[key] = redacted;
  }
  return out ?? attributes;
}

function sameItems(a: readonly unknown[], b: unknown): boolean {
  return Array.isArray(b) && a.length === b.length && a.every((v, i) => v === b[i]);
}
