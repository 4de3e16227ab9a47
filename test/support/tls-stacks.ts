// The TLS topologies of the tests, as real redis-server processes on free ports (certificates
// from test/support/tls.ts): a Cluster with `tls-cluster yes`, and a master, a replica and a
// sentinel that all speak TLS to clients. Client certificates are required on every TLS port.
// Each node keeps a plain port for the test's own administration (`command(port, ...)`); a
// client under test is given only the TLS ports.
import { performance } from 'node:perf_hooks';
import { waitUntil } from '../../scripts/wait';
import { command, startCluster, startNode, type ClusterStack, type RedisNode } from '../../scripts/redis-stack';
import { freePort } from './redis-server';
import { tlsServerArgs, type TestPki } from './tls';

export interface TlsCluster {
  readonly stack: ClusterStack;
  /** The TLS port of the node on each plain port. */
  readonly tlsPort: ReadonlyMap<number, number>;
  /** `rediss+cluster://127.0.0.1:<tls port>,...` */
  readonly url: string;
  /** How long the cluster took to start (ms). */
  readonly startedInMs: number;
}

/** Three masters with a replica each, TLS between the nodes too (`tls-cluster yes`). */
export async function startTlsCluster(pki: TestPki): Promise<TlsCluster> {
  const t = performance.now();
  const tlsPort = new Map<number, number>();
  const stack = await startCluster({
    nodeTimeoutMs: 1000,
    // With tls-cluster yes the bus listens on the TLS port + 10000: both below the ephemeral
    // range (freePort(true)), and clear of every other node's ports.
    nodeArgs: async (port, taken) => {
      const busy = () => new Set([...taken, ...[...tlsPort.values()].flatMap((p) => [p, p + 10_000])]);
      let p = await freePort(true);
      while (busy().has(p) || busy().has(p + 10_000)) p = await freePort(true);
      tlsPort.set(port, p);
      return tlsServerArgs(pki, p, { authClients: 'yes', cluster: true });
    },
  });
  const url = `rediss+cluster://${stack.nodes.map((n) => `127.0.0.1:${tlsPort.get(n.port)}`).join(',')}`;
  return { stack, tlsPort, url, startedInMs: Math.round(performance.now() - t) };
}

export interface TlsSentinel {
  readonly master: RedisNode;
  readonly replica: RedisNode;
  readonly sentinel: RedisNode;
  /** plain port -> TLS port, of every node */
  readonly tlsPort: ReadonlyMap<number, number>;
  /** `rediss+sentinel://127.0.0.1:<sentinel's TLS port>/<name>` */
  readonly url: string;
  readonly masterName: string;
  stop(): Promise<void>;
}

/**
 * A master, its replica (replicating over TLS) and one sentinel (quorum 1, down after 2 s), each
 * with a TLS port that requires a client certificate.
 */
export async function startTlsSentinel(pki: TestPki, masterName: string): Promise<TlsSentinel> {
  const nodes: RedisNode[] = [];
  const tlsPort = new Map<number, number>();
  const dataNode = async (dir: string, replicaOf?: number): Promise<RedisNode> => {
    const port = await freePort();
    const tls = await freePort();
    tlsPort.set(port, tls);
    const node = await startNode(port, `${pki.dir}/${masterName}-${dir}`, {
      args: [
        ...tlsServerArgs(pki, tls, { authClients: 'yes' }),
        ...(replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(replicaOf)]),
      ],
    });
    nodes.push(node);
    return node;
  };
  try {
    const master = await dataNode('master');
    const replica = await dataNode('replica', tlsPort.get(master.port));
    await waitUntil(
      'the replica in sync over TLS',
      async () => ((await command(replica.port, 'ROLE')) as string[])[3] === 'connected',
      20_000,
    );
    const port = await freePort();
    const tls = await freePort();
    tlsPort.set(port, tls);
    const sentinel = await startNode(port, `${pki.dir}/${masterName}-sentinel`, {
      sentinel: true,
      configFile: [
        `sentinel monitor ${masterName} 127.0.0.1 ${tlsPort.get(master.port)} 1`,
        `sentinel down-after-milliseconds ${masterName} 2000`,
        `sentinel failover-timeout ${masterName} 5000`,
        '',
      ].join('\n'),
      args: tlsServerArgs(pki, tls, { authClients: 'yes' }),
    });
    nodes.push(sentinel);
    await waitUntil(
      'the sentinel sees the replica',
      async () => ((await command(sentinel.port, 'SENTINEL', 'REPLICAS', masterName)) as unknown[]).length === 1,
      20_000,
    );
    return {
      master,
      replica,
      sentinel,
      tlsPort,
      url: `rediss+sentinel://127.0.0.1:${tls}/${masterName}`,
      masterName,
      async stop() {
        for (const n of nodes) await n.kill();
      },
    };
  } catch (err) {
    for (const n of nodes) await n.kill();
    throw err;
  }
}
