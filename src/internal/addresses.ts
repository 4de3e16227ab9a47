import { isIP } from 'node:net';

/**
 * `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `ipv6/n`: a client address or range, as
 * `TRUST_PROXY` and a policy's `allow` list take them.
 */
export function isAddressOrRange(entry: string): boolean {
  const [addr = '', bits, ...more] = entry.split('/');
  const family = isIP(addr);
  if (family === 0 || more.length > 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
}
