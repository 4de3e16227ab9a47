import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/** Longest identity kept readable in a key; longer ones are hashed. */
export const MAX_IDENTITY_LENGTH = 64;
const SAFE_IDENTITY = /^[A-Za-z0-9._:@/-]+$/;

/** A stable, fixed-length digest: 128 bits of SHA-256 (domain-separated), base64url. */
export function digest(value: string): string {
  return createHash('sha256').update('rampart:key:').update(value).digest('base64url').slice(0, 22);
}

/**
 * Makes a value safe inside `rl:<policy>:{<identity>}`: kept as is when short and plain,
 * else hashed (so `{`, `}`, control characters, or 10 KB strings never reach Redis).
 */
export function safeIdentity(value: string): string {
  return value.length <= MAX_IDENTITY_LENGTH && SAFE_IDENTITY.test(value) ? value : `#${digest(value)}`;
}

/**
 * A custom key function's value inside a key. Kept bare (no kind marker: the key stays short),
 * so values shaped like another kind's marker (`i:`, `p:`, `c:` ...) are hashed: a custom key
 * can never land in the bucket of the client-IP fallback.
 */
export function customIdentity(value: string): string {
  const s = safeIdentity(value);
  return /^[a-z]:/.test(s) ? `#${digest(value)}` : s;
}

function expandIPv6(ip: string): number[] | undefined {
  let text = ip;
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const maybeV4 = text.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    if (!isIPv4(maybeV4)) return undefined;
    const o = maybeV4.split('.').map(Number) as [number, number, number, number];
    tail = [(o[0] << 8) | o[1], (o[2] << 8) | o[3]];
    text = `${text.slice(0, lastColon + 1)}`;
    if (text.endsWith('::')) text = text.slice(0, -1) + ':';
    else text = text.slice(0, -1);
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const halves = text.split('::');
  let groups: number[];
  if (halves.length === 2) {
    const head = parse(halves[0] as string);
    const rest = parse((halves[1] as string).replace(/:$/, ''));
    const missing = 8 - head.length - rest.length - tail.length;
    if (missing < 0) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest, ...tail];
  } else {
    groups = [...parse(text), ...tail];
  }
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/** The IPv4 client an IPv6 address stands for, in any notation: IPv4-mapped (`::ffff:a.b.c.d`, `::ffff:7f00:1`) or NAT64 (`64:ff9b::/96`). */
function mappedIPv4(groups: readonly number[]): string | undefined {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return v4(groups[6] as number, groups[7] as number);
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0))
    return v4(groups[6] as number, groups[7] as number);
  return undefined;
}

/** `ip` as an allow list compares it: the IPv4 client of an IPv4-mapped or NAT64 address (any notation), else as given. */
export function comparableAddress(ip: string): { readonly address: string; readonly family: 'ipv4' | 'ipv6' } {
  if (isIPv4(ip)) return { address: ip, family: 'ipv4' };
  const groups = isIPv6(ip) ? expandIPv6(ip) : undefined;
  const mapped = groups === undefined ? undefined : mappedIPv4(groups);
  return mapped === undefined ? { address: ip, family: 'ipv6' } : { address: mapped, family: 'ipv4' };
}

/**
 * The identity of a client address: IPv4 as is; IPv4-mapped (`::ffff:a.b.c.d`), NAT64
 * (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`) IPv6 folded to their IPv4 host; other
 * IPv6 grouped by its `/ipv6Subnet` prefix (one household or host gets one bucket,
 * however many addresses it rotates through).
 */
export function ipIdentity(ip: string | undefined, ipv6Subnet: number): string {
  if (ip === undefined || ip === '') return 'unknown';
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return safeIdentity(ip);
  const groups = expandIPv6(ip);
  if (groups === undefined) return safeIdentity(ip);
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d): the IPv4 client itself.
  const mapped = mappedIPv4(groups);
  if (mapped !== undefined) return mapped;
  // 6to4 (2002:aabb:ccdd::/48): the whole /48 belongs to the one IPv4 host a.b.c.d.
  if (groups[0] === 0x2002) return v4(groups[1] as number, groups[2] as number);
  let bits = ipv6Subnet;
  const masked = groups.map((g) => {
    const keep = Math.max(0, Math.min(16, bits));
    bits -= 16;
    return keep === 16 ? g : keep === 0 ? 0 : g & ((0xffff << (16 - keep)) & 0xffff);
  });
  // Drop the zero groups at the end: the prefix length says they are zero.
  let end = 8;
  while (end > 1 && masked[end - 1] === 0) end--;
  return `${masked
    .slice(0, end)
    .map((g) => g.toString(16))
    .join(':')}/${ipv6Subnet}`;
}
