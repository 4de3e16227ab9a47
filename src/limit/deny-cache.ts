/** A denial remembered until its retry time (or a hold time): the answer is known without asking the store. */
export interface CachedDenial {
  readonly untilUs: number;
  readonly atUs: number;
  readonly remaining: readonly number[];
  readonly resetUs: readonly number[];
  /** Bit i: policy i's penalty blocks (see Decision.blocked). */
  readonly blocked: number;
}

/** Denied keys, bounded: the oldest entry goes first when full. */
export interface DenyCache {
  /** `false` when `maxKeys` is 0: nothing is ever remembered. */
  readonly enabled: boolean;
  /** The denial for `key` still in force at `nowUs`, if any (an expired one is dropped). */
  get(key: string, nowUs: number): CachedDenial | undefined;
  remember(key: string, denial: CachedDenial): void;
  clear(): void;
}

/** `maxHoldMs`: no denial is answered from here longer than this after the store gave it. */
export function createDenyCache(maxKeys: number, maxHoldMs: number = Infinity): DenyCache {
  const denied = new Map<string, CachedDenial>();
  const maxHoldUs = maxHoldMs * 1000;
  return {
    enabled: maxKeys !== 0,
    get(key, nowUs) {
      const hit = denied.get(key);
      if (hit === undefined) return undefined;
      if (hit.untilUs > nowUs && nowUs - hit.atUs < maxHoldUs) return hit;
      denied.delete(key);
      return undefined;
    },
    remember(key, denial) {
      if (maxKeys === 0) return;
      if (denied.size >= maxKeys) {
        const oldest = denied.keys().next();
        if (oldest.done !== true) denied.delete(oldest.value);
      }
      denied.set(key, denial);
    },
    clear() {
      denied.clear();
    },
  };
}
