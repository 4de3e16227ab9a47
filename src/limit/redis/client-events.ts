import type { FailureDomains } from '../store';
import type { StoreConnection } from './connection';

/**
 * The store's {@link FailureDomains} from the client's events: `onRecover` everywhere, and on
 * Cluster `partition` and `onTopology`. `close()` takes back every listener hung on the client
 * (the client outlives the store).
 */
export function clientEvents(
  connection: StoreConnection,
): FailureDomains & Required<Pick<FailureDomains, 'onRecover'>> & { close(): void } {
  const { cluster } = connection;
  const unhook: (() => void)[] = [];
  const hook = (on: (fn: () => void) => () => void, fn: () => void): (() => void) => {
    const off = on(fn);
    unhook.push(off);
    return off;
  };

  return {
    ...(cluster === undefined
      ? {}
      : {
          partition: cluster.partition,
          // After each slot-map refresh: the masters that own a slot now.
          onTopology: (listener: (domains: ReadonlySet<string>) => void) => hook(connection.onRefresh, () => listener(cluster.owners())),
        }),
    onRecover(listener: (domain?: string) => void) {
      // The whole client (re)connected. On Cluster a slot with a new owner needs no event: its
      // keys map to another domain, and so to another breaker, as soon as the slot map says so.
      const offReady = hook(connection.onReady, () => listener());
      if (cluster === undefined) return offReady;
      const offNodes = cluster.watchNodes(listener);
      unhook.push(offNodes);
      return () => {
        offReady();
        offNodes();
      };
    },
    close() {
      for (const u of unhook.splice(0)) u();
    },
  };
}
