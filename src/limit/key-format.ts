/**
 * The layout of the store's keys, written once. A policy's bucket for an identity is
 * `<prefix>:<keyName>:{<identity>}`: the braces are a Redis Cluster hash tag, so every key of one
 * identity (each policy's bucket, its penalty, its override) lives in one hash slot and one
 * request's checks go in one script call. `keyName` is the policy, or `policy@surface` when a
 * surface overrides its numbers; the identity is already encoded (keys.ts).
 */
export const bucketKey = (prefix: string, keyName: string, identity: string): string => `${prefix}:${keyName}:{${identity}}`;
/** The key of a check's penalty state: same hash tag, so the same slot. */
export const penaltyKey = (key: string): string => `${key}!p`;
/** The key of an identity's own numbers for a check (see `RateLimitStore.setOverride`). */
export const overrideKey = (key: string): string => `${key}!o`;
/** The fleet's heartbeat set of a limiter prefix (`RateLimitStore.fleet`): a slot of its own on Cluster. */
export const fleetKey = (prefix: string): string => `${prefix}:fleet:{${prefix}:fleet}`;
