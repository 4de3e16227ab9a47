import type { PolicyOptions } from './types';

/**
 * What one identity's bucket of a policy costs in Redis, from `MEMORY USAGE` of real keys
 * (Redis 7.0, 64-bit, jemalloc; a key of about 25 characters, `rl:<policy>:{i:<IPv4>}`; the
 * bench's memory rows measure them again, docs/rate-limiting.md gives the table). A longer key
 * adds its length; a penalty's strikes and an override are one more small key each, while they
 * exist.
 */
export const MEMORY_PER_IDENTITY = Object.freeze({
  /** One integer (token bucket, quota, sliding window counter): kept inside the key's object. */
  integerKeyBytes: 72,
  /** A sorted set in one listpack (up to 128 members): a fixed part and each member. */
  listpackBaseBytes: 72,
  windowListpackMemberBytes: 32,
  leaseListpackMemberBytes: 30,
  /** Past 128 members Redis turns the set into a skiplist and a hash table: per member. */
  listpackMaxMembers: 128,
  windowSkiplistMemberBytes: 120,
  leaseSkiplistMemberBytes: 116,
});

/** Above this many bytes per identity, `rampart check-policies` warns. */
export const MEMORY_WARN_BYTES = 10_000;

/**
 * About how many bytes of Redis one identity's bucket of `policy` takes once it has used all of
 * it (a window full, every lease held): constant for the token bucket, the quota and the sliding
 * window counter; growing with the limit for the exact sliding window and concurrency. With
 * tiers, the largest of the policy's own numbers and its tiers'.
 */
export function memoryPerIdentity(policy: PolicyOptions): number {
  const limits = [policy, ...Object.values(policy.tiers ?? {})].map((n) => ('limit' in n ? (n.limit ?? 0) : 0));
  return bytesAt(policy, Math.max(...limits));
}

function bytesAt(policy: PolicyOptions, limit: number): number {
  const m = MEMORY_PER_IDENTITY;
  const set = (members: number, listpack: number, skiplist: number) =>
    members <= m.listpackMaxMembers ? m.listpackBaseBytes + listpack * members : skiplist * members;
  switch (policy.algorithm) {
    case 'sliding_window':
      return set(limit, m.windowListpackMemberBytes, m.windowSkiplistMemberBytes);
    case 'concurrency':
      return set(limit, m.leaseListpackMemberBytes, m.leaseSkiplistMemberBytes);
    default:
      return m.integerKeyBytes;
  }
}

/** `bytes` for people: `72 B`, `3.7 KB`, `118 KB`, `1.2 MB`, `118 GB` (powers of 1000). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 || v >= 100 ? Math.round(v) : Number(v.toFixed(1))} ${units[u]}`;
}
