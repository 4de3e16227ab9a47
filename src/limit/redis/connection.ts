import type { ClusterWatch } from './cluster-watch';
import type { ScriptCall } from './wire';

/**
 * An ioredis-family client by shape (ioredis 5, iovalkey, another copy of ioredis 6): what tells
 * it apart; the store uses the rest of ioredis's API as ioredis 6 has it.
 */
export interface IoredisFamilyClient {
  readonly isCluster: boolean;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/**
 * What the Redis store needs of a client, whatever its library: run a script on the node of its
 * first key (loading it again after `NOSCRIPT`), set and delete a key, say why a call failed,
 * hear the client come back, and on Cluster know each slot's owner and hear of changes.
 */
export interface StoreConnection {
  /** The slot map's watch, on Cluster. */
  readonly cluster: ClusterWatch | undefined;
  /**
   * What runs `lua` with a call's keys and arguments (by its SHA, sending the source once after
   * `NOSCRIPT`). Unless `preload` is false, the script is also loaded (`SCRIPT LOAD`) on every
   * connection that is or becomes ready, so that a decision rarely meets `NOSCRIPT`.
   */
  script(name: string, lua: string, preload?: boolean): (call: ScriptCall) => Promise<unknown>;
  set(key: string, value: string, ttlMs: number | undefined): Promise<unknown>;
  /** A command whose keys share `key`'s slot, sent to its node: `[name, ...args]`. */
  command(key: string, args: readonly (string | number)[]): Promise<unknown>;
  del(key: string): Promise<unknown>;
  /** Whether `err` is a server's reply (`NOSCRIPT`, `OOM`, `WRONGTYPE`...), not a connection's failure. */
  isReply(err: unknown): boolean;
  /** Why the client cannot serve `key` now, when its connections said so (never a password). */
  outageCause(key: string): string | undefined;
  /** Calls `listener` each time the whole client is ready again; returns what takes it off. */
  onReady(listener: () => void): () => void;
  /** Cluster: calls `listener` after each refresh of the slot map; returns what takes it off. */
  onRefresh(listener: () => void): () => void;
  close(): void;
}
