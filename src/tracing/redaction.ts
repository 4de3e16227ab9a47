import type { Attributes, AttributeValue } from '@opentelemetry/api';

/** What a redacted value becomes. */
export const REDACTED = '[REDACTED]';

// Keys whose value is never exported, whatever it looks like.
const SECRET_KEY = /signature|token|secret|nonce|password|passwd|api[_-]?key|authorization|cookie|credential|session/i;
const SECRET_FIELDS = new Set(['header_b64u', 'ciphertext_b64u', 'ciphertext_hash']);
const HEADER_KEY = /^http\.(request|response)\.header\./;
// Keys holding a URL or query string: values of every parameter are dropped, names kept.
const URL_KEYS = new Set(['url.query', 'url.full', 'http.url', 'http.target']);
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

function redactQuery(query: string): string {
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1 ? pair : `${pair.slice(0, eq)}=${REDACTED}`;
    })
    .join('&');
}

function redactUrl(value: string): string {
  const q = value.indexOf('?');
  if (q === -1) {
    // `url.query` has no "?": it is the query itself.
    return value.includes('=') && !value.includes('/') ? redactQuery(value) : scrubString(value);
  }
  const hash = value.indexOf('#', q);
  const base = scrubString(value.slice(0, q).replace(/\/\/[^/@]*@/, `//${REDACTED}@`));
  const query = hash === -1 ? value.slice(q + 1) : value.slice(q + 1, hash);
  return `${base}?${redactQuery(query)}`;
}

/** SQL with string and numeric literals replaced by `?`. */
export function scrubSql(sql: string): string {
  return sql
    .replace(/'(?:[^']|'')*'/g, '?')
    .replace(/\$[A-Za-z_]*\$[\s\S]*?\$[A-Za-z_]*\$/g, '?')
    .replace(/\b\d+(\.\d+)?\b/g, (m, _f, offset: number, whole: string) => (whole[offset - 1] === '$' ? m : '?'));
}

function redactValue(key: string, value: AttributeValue, system: string | undefined): AttributeValue {
  if (SECRET_FIELDS.has(key) || SECRET_KEY.test(key) || HEADER_KEY.test(key)) return REDACTED;
  if (typeof value === 'string') {
    if (URL_KEYS.has(key)) return redactUrl(value);
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
