import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';

/** After a failure on Cluster, the slot map is refreshed this often… */
const TOPOLOGY_REFRESH_MS = 100;
/** …for this long (a promoted replica is used as soon as the map says so). */
const TOPOLOGY_WATCH_MS = 10_000;

/** What the Redis store watches of a Cluster: where keys live, and who came back. */
export interface ClusterWatch {
  /** The master now serving `key`'s slot (`host:port`), the key's failure domain. */
  partition(key: string): string;
  /** The same, `undefined` while no master is known for the slot. */
  nodeOf(key: string): string | undefined;
  /** The masters that own a slot now. */
  owners(): Set<string>;
  /**
   * After a failed call: ask for the slot map every 100 ms for a while, so a promoted replica is
   * found within ~100 ms of its election instead of at the next periodic refresh (while a
   * shard's breaker is open no command runs that would make ioredis look).
   */
  afterFailure(): void;
  /**
   * Tells `listener` of each node that answers again and says the cluster is ok; returns what
   * takes the listeners back off.
   */
  watchNodes(listener: (domain: string) => void): () => void;
  close(): void;
}

export function watchCluster(client: Cluster): ClusterWatch {
  let lastFailure = 0;
  let refresher: NodeJS.Timeout | undefined;

  function watchNodes(listener: (domain: string) => void): () => void {
    const watched = new Map<Redis, () => void>();
    let stopped = false;
    const watch = (node: Redis) => {
      if (watched.has(node)) return;
      const domain = `${node.options.host ?? ''}:${node.options.port ?? ''}`;
      // A node that is reachable again may still refuse its slots (CLUSTERDOWN) until the
      // cluster has taken it back: its breaker closes once it says the cluster is ok.
      const onReady = () => {
        const until = Date.now() + TOPOLOGY_WATCH_MS;
        const ask = () => {
          if (stopped || node.status !== 'ready') return;
          node.call('CLUSTER', 'INFO').then(
            (text) => {
              if (stopped) return;
              if (String(text).includes('cluster_state:ok')) listener(domain);
              else if (Date.now() < until) setTimeout(ask, TOPOLOGY_REFRESH_MS).unref();
            },
            () => undefined,
          );
        };
        ask();
      };
      // ioredis replaces a node's connection object when it reconnects: drop the old one.
      const onEnd = () => {
        node.off('ready', onReady);
        watched.delete(node);
      };
      node.on('ready', onReady);
      node.once('end', onEnd);
      watched.set(node, () => {
        node.off('ready', onReady);
        node.off('end', onEnd);
      });
      // Not connected here: ioredis connects a node on its first command (a breaker's half-open
      // probe), and connecting its nodes from outside made a cluster whose nodes announce
      // hostnames drop every connection at its first slot refresh (the compose smoke).
    };
    for (const node of client.nodes('all')) watch(node);
    client.on('+node', watch);
    return () => {
      stopped = true;
      client.off('+node', watch);
      for (const off of watched.values()) off();
      watched.clear();
    };
  }

  const nodeOf = (key: string) => client.slots[calculateSlot(key)]?.[0];
  return {
    partition: (key) => nodeOf(key) ?? 'unmapped',
    nodeOf,
    owners() {
      const owners = new Set<string>();
      for (const nodes of client.slots) if (nodes?.[0] !== undefined) owners.add(nodes[0]);
      return owners;
    },
    afterFailure() {
      lastFailure = Date.now();
      if (refresher !== undefined) return;
      refresher = setInterval(() => {
        if (Date.now() - lastFailure > TOPOLOGY_WATCH_MS) {
          clearInterval(refresher);
          refresher = undefined;
          return;
        }
        client.refreshSlotsCache();
      }, TOPOLOGY_REFRESH_MS);
      refresher.unref();
    },
    watchNodes,
    close() {
      clearInterval(refresher);
      refresher = undefined;
    },
  };
}
