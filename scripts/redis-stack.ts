// The Redis topologies of the compose environment, as local processes: a 6-node Cluster
// (3 masters, 3 replicas) and a Sentinel set (1 master, 2 replicas, 3 sentinels, quorum 2).
// Each server runs from Debian's redis-server on 127.0.0.1, in its own temp dir, on a free
// port, and is stopped by its PID, never by name. Used by the tests and by `npm run stack:up`.
import { waitUntil } from './wait';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './ports';

const run = promisify(execFile);

/** One redis-server (data node or sentinel) started here. */
export interface RedisNode {
  readonly port: number;
  readonly dir: string;
  /** PID of the running server; changes on restart. */
  readonly pid: number;
  /** SIGKILL: the server vanishes without a goodbye (a crash). Resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again from the same dir and port (a cluster node rejoins as a replica). */
  restart(extraArgs?: readonly string[]): Promise<void>;
  /** Opens a client to it (the caller quits it). */
  client(): Redis;
}

function quickClient(port: number): Redis {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  c.on('error', () => undefined);
  return c;
}

/** Sends one command to the server on `port` and closes the connection. */
export async function command(port: number, ...args: string[]): Promise<unknown> {
  const c = quickClient(port);
  try {
    await c.connect();
    return await c.call(args[0] as string, ...args.slice(1));
  } finally {
    c.disconnect();
  }
}

/** `INFO <section>` of the server on `port` as a map. */
export async function info(port: number, section: string): Promise<Map<string, string>> {
  const text = String(await command(port, 'INFO', section));
  const out = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

export interface StartNodeOptions {
  /** Detach from this process (the stack CLI): the server outlives it. */
  readonly detached?: boolean;
  /** Arguments after the config file (or the port flags when there is none). */
  readonly args?: readonly string[];
  /** Write this config file into the node's dir and start from it (sentinels need a writable one). */
  readonly configFile?: string;
  readonly sentinel?: boolean;
}

/** Starts one redis-server on `port` in `dir` and waits until it answers as itself (its PID). */
export async function startNode(port: number, dir: string, options: StartNodeOptions = {}): Promise<RedisNode> {
  mkdirSync(dir, { recursive: true });
  let child: ChildProcess | undefined;
  let pid = 0;
  const launch = async (extraArgs: readonly string[] = []) => {
    const args: string[] = [];
    if (options.configFile !== undefined) {
      const file = join(dir, options.sentinel === true ? 'sentinel.conf' : 'redis.conf');
      writeFileSync(file, options.configFile);
      args.push(file);
      if (options.sentinel === true) args.push('--sentinel');
    }
    args.push('--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', join(dir, 'redis.log'));
    if (options.sentinel !== true) args.push('--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0');
    args.push(...(options.args ?? []), ...extraArgs);
    const c = spawn('redis-server', args, { stdio: 'ignore', detached: options.detached === true });
    if (options.detached === true) c.unref();
    child = c;
    const exited = new Promise<never>((_, reject) =>
      c.once('exit', (code) => reject(new Error(`redis-server on ${port} exited with ${code}; see ${join(dir, 'redis.log')}`))),
    );
    exited.catch(() => undefined);
    // Ready when it answers and the answer comes from this process (a busy port would be someone else).
    await Promise.race([
      waitUntil(`redis-server on ${port}`, async () => (await info(port, 'server')).get('process_id') === String(c.pid), 10_000, 25),
      exited,
    ]);
    pid = c.pid as number;
  };
  await launch();
  return {
    port,
    dir,
    get pid() {
      return pid;
    },
    async kill() {
      const c = child;
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((resolve) => c.once('exit', resolve));
      process.kill(pid, 'SIGKILL');
      await gone;
    },
    restart: (extraArgs) => launch(extraArgs),
    client: () => {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      return c;
    },
  };
}

/** Kills a server by PID (for the CLI, which did not spawn it in this process). */
export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

// --- Cluster ---------------------------------------------------------------------------------

export interface ClusterOptions {
  /** cluster-node-timeout. Default 1000. */
  readonly nodeTimeoutMs?: number;
  /** cluster-require-full-coverage. Default false (see docs/redis.md, Cluster). */
  readonly requireFullCoverage?: boolean;
  readonly detached?: boolean;
}

export interface ClusterStack {
  readonly kind: 'cluster';
  readonly root: string;
  readonly nodes: readonly RedisNode[];
  /** `redis+cluster://127.0.0.1:p1,...` */
  readonly url: string;
  /** The node serving `slot` as master now (asks a live node). */
  masterOf(slot: number): Promise<RedisNode>;
  /** The replica of the master on `port`. */
  replicaOf(port: number): Promise<RedisNode>;
  /** Stops every node and removes the dirs. */
  stop(): Promise<void>;
}

interface ClusterNodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: string;
  readonly masterId: string;
  readonly connected: boolean;
}

async function clusterNodes(port: number): Promise<ClusterNodeLine[]> {
  const text = String(await command(port, 'CLUSTER', 'NODES'));
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const f = line.split(' ');
      const addr = f[1] ?? '';
      return {
        id: f[0] ?? '',
        port: Number(addr.slice(addr.lastIndexOf(':') + 1).split('@')[0]),
        flags: f[2] ?? '',
        masterId: f[3] ?? '-',
        connected: f[7] === 'connected',
      };
    });
}

async function clusterHealthy(nodes: readonly RedisNode[]): Promise<boolean> {
  for (const n of nodes) {
    if (!String(await command(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
    const seen = await clusterNodes(n.port);
    const ok = seen.filter((s) => s.connected && !s.flags.includes('fail'));
    if (ok.filter((s) => s.flags.includes('master')).length !== 3 || ok.filter((s) => s.flags.includes('slave')).length !== 3) return false;
  }
  return true;
}

/** Starts 6 nodes, creates the cluster (3 masters, 1 replica each) and waits until it is whole. */
export async function startCluster(options: ClusterOptions = {}): Promise<ClusterStack> {
  const root = mkdtempSync(join(tmpdir(), 'rampart-cluster-'));
  const nodeTimeout = options.nodeTimeoutMs ?? 1000;
  const nodes: RedisNode[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort(true);
      nodes.push(
        await startNode(port, join(root, String(port)), {
          detached: options.detached ?? false,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            String(nodeTimeout),
            // A failed shard should not stop the others: the default (yes) answers CLUSTERDOWN
            // for every slot from the moment a master is marked failed until its replica takes over.
            '--cluster-require-full-coverage',
            options.requireFullCoverage === true ? 'yes' : 'no',
            '--protected-mode',
            'no',
          ],
        }),
      );
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes']);
    await waitUntil('cluster_state:ok with 3 masters and 3 replicas on every node', () => clusterHealthy(nodes), 30_000, 100);
    // Replicas appear in CLUSTER SLOTS only once they have replicated something: one write per master.
    const first = nodes[0] as RedisNode;
    const c = new Redis.Cluster([{ host: '127.0.0.1', port: first.port }]);
    c.on('error', () => undefined);
    try {
      for (const key of ['{a}warm', '{b}warm', '{c}warm']) await c.set(key, '1', 'PX', 1000);
    } finally {
      c.disconnect();
    }
    await waitUntil('every replica linked to its master', async () => {
      for (const n of nodes) {
        const r = await info(n.port, 'replication');
        if (r.get('role') === 'slave' && r.get('master_link_status') !== 'up') return false;
      }
      return true;
    });
  } catch (err) {
    for (const n of nodes) await n.kill();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const byPort = (port: number) => nodes.find((n) => n.port === port) as RedisNode;
  const live = async () => {
    for (const n of nodes) {
      try {
        await command(n.port, 'PING');
        return n;
      } catch {
        // dead: ask another
      }
    }
    throw new Error('no cluster node answers');
  };
  return {
    kind: 'cluster',
    root,
    nodes,
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    async masterOf(slot) {
      const slots = (await command((await live()).port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const range = slots.find(([lo, hi]) => slot >= lo && slot <= hi);
      if (range === undefined) throw new Error(`slot ${slot} is not served`);
      return byPort(range[2][1]);
    },
    async replicaOf(port) {
      const seen = await clusterNodes((await live()).port);
      const master = seen.find((s) => s.port === port);
      const replica = seen.find((s) => s.masterId === master?.id && s.flags.includes('slave'));
      if (replica === undefined) throw new Error(`no replica of ${port}`);
      return byPort(replica.port);
    },
    async stop() {
      for (const n of nodes) await n.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

// --- Sentinel --------------------------------------------------------------------------------

export interface SentinelOptions {
  /** down-after-milliseconds: below 1500 Sentinel flaps on a healthy new master. Default 2000. */
  readonly downAfterMs?: number;
  /** failover-timeout. Default 5000. */
  readonly failoverTimeoutMs?: number;
  readonly masterName?: string;
  readonly detached?: boolean;
}

export interface SentinelStack {
  readonly kind: 'sentinel';
  readonly root: string;
  readonly masterName: string;
  /** The data nodes: the first is the initial master. */
  readonly dataNodes: readonly RedisNode[];
  readonly sentinels: readonly RedisNode[];
  /** `redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<master>` */
  readonly url: string;
  /** The data node the first answering sentinel names as master. */
  master(): Promise<RedisNode>;
  stop(): Promise<void>;
}

export function sentinelConfig(masterPort: number, o: { masterName: string; downAfterMs: number; failoverTimeoutMs: number }): string {
  return [
    `sentinel monitor ${o.masterName} 127.0.0.1 ${masterPort} 2`,
    `sentinel down-after-milliseconds ${o.masterName} ${o.downAfterMs}`,
    `sentinel failover-timeout ${o.masterName} ${o.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${o.masterName} 1`,
    '',
  ].join('\n');
}

/** Starts a master, 2 replicas and 3 sentinels (quorum 2), and waits until they all see each other. */
export async function startSentinel(options: SentinelOptions = {}): Promise<SentinelStack> {
  const root = mkdtempSync(join(tmpdir(), 'rampart-sentinel-'));
  const masterName = options.masterName ?? 'mymaster';
  const conf = { masterName, downAfterMs: options.downAfterMs ?? 2000, failoverTimeoutMs: options.failoverTimeoutMs ?? 5000 };
  const detached = options.detached ?? false;
  const dataNodes: RedisNode[] = [];
  const sentinels: RedisNode[] = [];
  try {
    const masterPort = await freePort();
    dataNodes.push(await startNode(masterPort, join(root, String(masterPort)), { detached }));
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      dataNodes.push(await startNode(port, join(root, String(port)), { detached, args: ['--replicaof', '127.0.0.1', String(masterPort)] }));
    }
    await waitUntil('replicas linked to the master', async () => (await info(masterPort, 'replication')).get('connected_slaves') === '2');
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      sentinels.push(
        await startNode(port, join(root, String(port)), { detached, sentinel: true, configFile: sentinelConfig(masterPort, conf) }),
      );
    }
    await waitUntil(
      'every sentinel to see 2 replicas and 2 other sentinels',
      async () => {
        for (const s of sentinels) {
          const m = (await command(s.port, 'SENTINEL', 'MASTER', masterName)) as string[];
          const f = new Map<string, string>();
          for (let i = 0; i + 1 < m.length; i += 2) f.set(m[i] as string, m[i + 1] as string);
          if (f.get('num-slaves') !== '2' || f.get('num-other-sentinels') !== '2') return false;
          if (!String(await command(s.port, 'SENTINEL', 'CKQUORUM', masterName)).startsWith('OK')) return false;
        }
        return true;
      },
      30_000,
      100,
    );
  } catch (err) {
    for (const n of [...sentinels, ...dataNodes]) await n.kill();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return {
    kind: 'sentinel',
    root,
    masterName,
    dataNodes,
    sentinels,
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${masterName}`,
    async master() {
      for (const s of sentinels) {
        try {
          const [, port] = (await command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
          const n = dataNodes.find((d) => d.port === Number(port));
          if (n !== undefined) return n;
        } catch {
          // ask the next sentinel
        }
      }
      throw new Error('no sentinel names a master');
    },
    async stop() {
      for (const n of [...sentinels, ...dataNodes]) await n.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
