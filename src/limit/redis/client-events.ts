import type { Cluster, Redis } from 'ioredis';
import type { FailureDomains } from '../store';
import type { ClusterWatch } from './cluster-watch';

/**
 * The store's {@link FailureDomains} from the client's events: `onRecover` everywhere, and on
 * Cluster `partition` and `onTopology`. `close()` takes back every listener hung on the client
 * (the client outlives the store).
 */
export function clientEvents(
  client: Redis | Cluster,
  cluster: ClusterWatch | undefined,
): FailureDomains & Required<Pick<FailureDomains, 'onRecover'>> & { close(): void } {
  const unhook: (() => void)[] = [];

  /** Registers a client listener until `off()` or close. */
  function hook(event: string, fn: () => void): () => void {
    client.on(event, fn);
    const off = () => {
      client.off(event, fn);
      const k = unhook.indexOf(off);
      if (k !== -1) unhook.splice(k, 1);
    };
    unhook.push(off);
    return off;
  }

  return {
    ...(cluster === undefined
      ? {}
      : {
          partition: cluster.partition,
          // After each slot-map refresh: the masters that own a slot now.
          onTopology: (listener: (domains: ReadonlySet<string>) => void) => hook('refresh', () => listener(cluster.owners())),
        }),
    onRecover(listener: (domain?: string) => void) {
      // The whole client (re)connected. On Cluster a slot with a new owner needs no event: its
      // keys map to another domain, and so to another breaker, as soon as the slot map says so.
      const offReady = hook('ready', () => listener());
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
