import { BlockList, isIP } from 'node:net';
import type { Request, Response } from 'express';
import { isAddressOrRange } from '../internal/addresses';
import { comparableAddress } from './keys';

/** Whether a request skips a policy: its client address is in a listed range, or its identity is listed. */
export type AllowedTest = (req: Request, res: Response) => boolean;

/**
 * Compiles a policy's `allow` list: addresses and ranges match the client address (`req.ip`,
 * so `trust proxy` decides, as for `key: 'ip'`; an IPv4 client written as IPv6, IPv4-mapped in
 * either notation or NAT64 `64:ff9b::/96`, matches its IPv4 form, as keys fold it; a 6to4
 * address does not: an exemption is granted to an address, not to a /48); any other entry matches the policy's own identity value (the principal, the
 * credential or the custom key's value, as the app gives it, before hashing).
 */
export function allowList(
  entries: readonly string[],
  rawIdentity: ((req: Request, res: Response) => string | undefined) | undefined,
): AllowedTest {
  const ranges = new BlockList();
  const values = new Set<string>();
  for (const entry of entries) {
    if (!isAddressOrRange(entry)) {
      values.add(entry);
      continue;
    }
    const [addr = '', bits] = entry.split('/');
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) ranges.addAddress(addr, family);
    else ranges.addSubnet(addr, Number(bits), family);
  }
  const inRanges = (ip: string | undefined): boolean => {
    if (ip === undefined || ip === '') return false;
    const c = comparableAddress(ip);
    // An IPv4 client written as IPv6 matches its IPv4 entries, and IPv6 entries as written.
    return ranges.check(c.address, c.family) || (c.family === 'ipv4' && isIP(ip) === 6 && ranges.check(ip, 'ipv6'));
  };
  return (req, res) => {
    if (inRanges(req.ip ?? req.socket.remoteAddress)) return true;
    if (values.size === 0 || rawIdentity === undefined) return false;
    const v = rawIdentity(req, res);
    return v !== undefined && values.has(v);
  };
}
