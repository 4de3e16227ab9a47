// The Redis topologies of the compose environment, as local processes: a 6-node Cluster
// (3 masters, 3 replicas) and a Sentinel set (1 master, 2 replicas, 3 sentinels, quorum 2).
// Each server runs from Debian's redis-server on 127.0.0.1, in its own temp dir, on a free
// port, and is stopped by its PID, never by name. Used by the tests and by `npm run stack:up`.
// The helpers that name nodes by role (masterOf, replicaOf, master, replicas) ask the servers
// what the topology is now, never what it was at start-up: a failover changes the pairing.
// `problems()` says what differs from the shape a stack starts with, and `restore()` brings it
// back (restarts killed nodes, re-attaches replicas, ends pauses), or fails naming what is wrong.
import calculateSlot from 'cluster-key-slot';
import { waitUntil } from './wait';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Whether the process started here is still running (false once killed or exited). */
  readonly running: boolean;
  /** SIGKILL: the server vanishes without a goodbye (a crash). Resolves once it is gone. */
  kill(): Promise<void>;
  /**
   * Starts it again from the same dir and port (a cluster node rejoins with its nodes.conf, a
   * sentinel with the config it rewrote). Refused while it runs.
   */
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

/** The last lines of a server's log, on one line (or why there are none). */
function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch (err) {
    return `(no log: ${(err as Error).message})`;
  }
}

/** Starts one redis-server on `port` in `dir` and waits until it answers as itself (its PID). */
export async function startNode(port: number, dir: string, options: StartNodeOptions = {}): Promise<RedisNode> {
  mkdirSync(dir, { recursive: true });
  let child: ChildProcess | undefined;
  let pid = 0;
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const launch = async (extraArgs: readonly string[] = []) => {
    if (running()) throw new Error(`redis-server on ${port} is running (PID ${pid}): kill it before restarting it`);
    const args: string[] = [];
    if (options.configFile !== undefined) {
      const file = join(dir, options.sentinel === true ? 'sentinel.conf' : 'redis.conf');
      // Written once: a sentinel rewrites its file with what it learnt (the current master, the
      // other sentinels), and restarted from the first one it would monitor a master of the past.
      if (child === undefined) writeFileSync(file, options.configFile);
      args.push(file);
      if (options.sentinel === true) args.push('--sentinel');
    }
    args.push('--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', join(dir, 'redis.log'));
    if (options.sentinel !== true) args.push('--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0');
    args.push(...(options.args ?? []), ...extraArgs);
    const c = spawn('redis-server', args, { stdio: 'ignore', detached: options.detached === true });
    if (options.detached === true) c.unref();
    child = c;
    pid = c.pid ?? 0;
    const exited = new Promise<never>((_, reject) => {
      // The log's last lines go with the error: the directory may be removed before anyone reads it.
      c.once('exit', (code) =>
        reject(new Error(`redis-server on ${port} exited with ${code}; its log ends: ${logTail(join(dir, 'redis.log'))}`)),
      );
      c.once('error', (err) => reject(new Error(`redis-server on ${port} did not start: ${err.message}`)));
    });
    exited.catch(() => undefined);
    // Ready when it answers and the answer comes from this process (a busy port would be someone else).
    try {
      await Promise.race([
        waitUntil(`redis-server on ${port}`, async () => (await info(port, 'server')).get('process_id') === String(c.pid), 10_000, 25),
        exited,
      ]);
    } catch (err) {
      await stop(); // a server that never became ready is not left behind
      throw err;
    }
  };
  /** SIGKILL to the process started here (its PID), and wait for its exit. */
  const stop = async () => {
    const c = child;
    if (c === undefined || !running()) return;
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await gone;
  };
  await launch();
  return {
    port,
    dir,
    get pid() {
      return pid;
    },
    get running() {
      return running();
    },
    kill: stop,
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

// --- Settling ---------------------------------------------------------------------------------

/**
 * Polls `problems` (what is wrong, or nothing) until it finds nothing, or throws after
 * `timeoutMs` naming what was still wrong: the state, not only that time ran out.
 */
async function settle(what: string, problems: () => Promise<string[]>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    try {
      last = await problems();
    } catch (err) {
      last = [`could not look: ${err instanceof Error ? err.message : String(err)}`];
    }
    if (last.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs} ms; ${last.join('; ')}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** What a node's `command` failure says, for a problem list. */
const said = (err: unknown) => (err instanceof Error ? err.message : String(err));

// --- Cluster ---------------------------------------------------------------------------------

export interface ClusterOptions {
  /** cluster-node-timeout. Default 1000. */
  readonly nodeTimeoutMs?: number;
  /** cluster-require-full-coverage. Default false (see docs/redis.md, Cluster). */
  readonly requireFullCoverage?: boolean;
  readonly detached?: boolean;
  /**
   * More arguments for the node on `port` (a TLS port beside the plain one, `tls-cluster yes`);
   * `taken`: every node's port and bus port, which a port of its own must avoid.
   */
  readonly nodeArgs?: (port: number, taken: ReadonlySet<number>) => Promise<readonly string[]> | readonly string[];
}

/** A master serving slots and its working replicas, as one node sees them. */
export interface ClusterShard {
  readonly master: number;
  /** Its slot ranges as CLUSTER NODES lists them, e.g. `0-5460`. */
  readonly slots: string;
  readonly replicas: readonly number[];
}

/** The cluster as one node (`seenBy`) sees it (CLUSTER NODES). */
export interface ClusterShape {
  readonly seenBy: number;
  /** The masters serving slots, by port. */
  readonly shards: readonly ClusterShard[];
  /** Every other node: failing, unreachable, a master of no slots, a replica of a failing master. */
  readonly others: readonly { readonly port: number; readonly flags: string }[];
}

/** `master 7001 (0-5460) + replica 7004; ...; others: 7002 master,fail`: for errors and logs. */
export function describeShape(shape: ClusterShape): string {
  const shards = shape.shards.map(
    (s) => `master ${s.master} (${s.slots}) ${s.replicas.length === 0 ? 'WITHOUT A REPLICA' : `+ replica ${s.replicas.join(', ')}`}`,
  );
  const others = shape.others.map((o) => `${o.port} ${o.flags}`);
  return `as 127.0.0.1:${shape.seenBy} sees it: ${shards.join('; ')}${others.length === 0 ? '' : `; others: ${others.join(', ')}`}`;
}

export interface ClusterStack {
  readonly kind: 'cluster';
  readonly root: string;
  readonly nodes: readonly RedisNode[];
  /** `redis+cluster://127.0.0.1:p1,...` */
  readonly url: string;
  /** The node serving `slot` as master now (asks a live node). */
  masterOf(slot: number): Promise<RedisNode>;
  /**
   * The replica of the master on `port` now (CLUSTER NODES of a live node, confirmed by the
   * replica's own ROLE); throws naming the cluster's current shape if there is none.
   */
  replicaOf(port: number): Promise<RedisNode>;
  /** The cluster's shape now, as a live node sees it. */
  shape(): Promise<ClusterShape>;
  /**
   * What differs from the shape it started with (every node running and answering,
   * cluster_state:ok everywhere, 3 masters each with one linked replica, every node seeing the
   * same, no cluster-replica-no-failover); empty when whole.
   */
  problems(): Promise<string[]>;
  /**
   * Brings the shape back: restarts killed nodes, ends client pauses, allows failovers again,
   * re-attaches a spare node to a master left without a replica (CLUSTER REPLICATE), and waits
   * until `problems()` is empty; throws naming what is still wrong after `timeoutMs`.
   */
  restore(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes the dirs. */
  stop(): Promise<void>;
}

interface ClusterNodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: readonly string[];
  readonly masterId: string;
  readonly connected: boolean;
  readonly slots: readonly string[];
}

async function clusterNodes(port: number): Promise<ClusterNodeLine[]> {
  const text = String(await command(port, 'CLUSTER', 'NODES'));
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const f = line.trim().split(' ');
      const addr = f[1] ?? '';
      return {
        id: f[0] ?? '',
        port: Number(addr.slice(addr.lastIndexOf(':') + 1).split('@')[0]),
        flags: (f[2] ?? '').split(','),
        masterId: f[3] ?? '-',
        connected: f[7] === 'connected',
        slots: f.slice(8).filter((x) => !x.startsWith('[')), // not the [slot->-id] of a migration
      };
    });
}

/** A node that takes part: reachable from the asker, not flagged failing, not in a handshake. */
const working = (n: ClusterNodeLine) =>
  n.connected && !n.flags.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake' || f === 'noaddr');

function shapeOf(seenBy: number, lines: readonly ClusterNodeLine[]): ClusterShape {
  const masters = lines.filter((n) => working(n) && n.flags.includes('master') && n.slots.length > 0).sort((x, y) => x.port - y.port);
  const shards = masters.map((m) => ({
    master: m.port,
    slots: m.slots.join(','),
    replicas: lines
      .filter((n) => working(n) && n.flags.includes('slave') && n.masterId === m.id)
      .map((n) => n.port)
      .sort((x, y) => x - y),
  }));
  const placed = new Set(shards.flatMap((s) => [s.master, ...s.replicas]));
  const others = lines
    .filter((n) => !placed.has(n.port))
    .map((n) => ({ port: n.port, flags: `${n.flags.filter((f) => f !== 'myself').join(',')}${n.connected ? '' : ',disconnected'}` }));
  return { seenBy, shards, others };
}

/** A key whose slot lies in the master's first range (`slots` as CLUSTER NODES lists them). */
function keyServedBy(slots: string): string {
  const [lo, hi] = (slots.split(',')[0] ?? '').split('-').map(Number);
  const from = lo ?? 0;
  const to = hi ?? from;
  for (let i = 0; ; i++) {
    const key = `{warm${i}}`;
    const slot = calculateSlot(key);
    if (slot >= from && slot <= to) return key;
  }
}

/**
 * What differs from a whole cluster of `nodes` (`masters` shards, one replica each); empty when
 * whole. Each node is asked: its process, cluster_state, its CLUSTER NODES, and a replica its link.
 */
/**
 * A node's port as ROLE and INFO replication name it: with `tls-cluster yes` a replica follows
 * its master's TLS port; `plainOf` maps it back to the plain port the stack knows the node by.
 */
type PlainOf = (port: number) => number;

async function clusterProblems(nodes: readonly RedisNode[], masters: number, plainOf: PlainOf): Promise<string[]> {
  const problems: string[] = [];
  const shapes: ClusterShape[] = [];
  let misshapen = false;
  for (const n of nodes) {
    if (!n.running) {
      problems.push(`${n.port} is not running (killed, not restarted)`);
      continue;
    }
    try {
      const state = /cluster_state:(\w+)/.exec(String(await command(n.port, 'CLUSTER', 'INFO')))?.[1];
      if (state !== 'ok') problems.push(`${n.port} says cluster_state:${state}`);
      const shape = shapeOf(n.port, await clusterNodes(n.port));
      shapes.push(shape);
      misshapen ||=
        shape.shards.length !== masters ||
        shape.others.length > 0 ||
        shape.shards.some((s) => s.replicas.length !== 1) ||
        shape.shards.reduce((k, s) => k + 1 + s.replicas.length, 0) !== nodes.length;
      const noFailover = (await command(n.port, 'CONFIG', 'GET', 'cluster-replica-no-failover')) as string[];
      if (noFailover[1] === 'yes') problems.push(`${n.port} has cluster-replica-no-failover yes`);
    } catch (err) {
      problems.push(`${n.port} does not answer (${said(err)})`);
    }
  }
  // The shape once if every node sees the same, else each node's.
  const seen = (s: ClusterShape) => JSON.stringify([s.shards, s.others]);
  if (new Set(shapes.map(seen)).size > 1) problems.push(`the nodes see different shapes: ${shapes.map(describeShape).join(' | ')}`);
  else if (misshapen && shapes[0] !== undefined)
    problems.push(`not ${masters} masters with one replica each, ${describeShape(shapes[0])} (and so do the other nodes that answer)`);
  if (problems.length > 0) return problems;
  // Every replica linked to the master the others name.
  for (const shard of shapes[0]?.shards ?? []) {
    for (const r of shard.replicas) {
      const repl = await info(r, 'replication');
      if (
        repl.get('role') !== 'slave' ||
        plainOf(Number(repl.get('master_port'))) !== shard.master ||
        repl.get('master_link_status') !== 'up'
      )
        problems.push(
          `${r} is not a linked replica of ${shard.master} (role ${repl.get('role')}, master_port ${repl.get('master_port')}, link ${repl.get('master_link_status')})`,
        );
    }
  }
  return problems;
}

/** Starts 6 nodes, creates the cluster (3 masters, 1 replica each) and waits until it is whole. */
export async function startCluster(options: ClusterOptions = {}): Promise<ClusterStack> {
  const root = mkdtempSync(join(tmpdir(), 'rampart-cluster-'));
  const nodeTimeout = options.nodeTimeoutMs ?? 1000;
  const nodes: RedisNode[] = [];
  const MASTERS = 3;
  const byPort = (port: number) => {
    const n = nodes.find((x) => x.port === port);
    if (n === undefined) throw new Error(`127.0.0.1:${port} is not a node of this cluster (${nodes.map((x) => x.port).join(', ')})`);
    return n;
  };
  /** A node that answers (the first of the list that does). */
  const live = async () => {
    const tried: string[] = [];
    for (const n of nodes) {
      if (!n.running) {
        tried.push(`${n.port} not running`);
        continue;
      }
      try {
        await command(n.port, 'PING');
        return n;
      } catch (err) {
        tried.push(`${n.port} ${said(err)}`); // dead: ask another
      }
    }
    throw new Error(`no cluster node answers: ${tried.join(', ')}`);
  };
  const shape = async () => {
    const asked = await live();
    return shapeOf(asked.port, await clusterNodes(asked.port));
  };
  /**
   * One expiring write on every master: a replica is listed in CLUSTER SLOTS (where clients
   * find it) only once it has replicated something.
   */
  const warm = async () => {
    const s = await shape();
    for (const shard of s.shards) await command(shard.master, 'SET', keyServedBy(shard.slots), '1', 'PX', '1000');
    await settle(
      'every replica listed in CLUSTER SLOTS',
      async () => {
        const problems: string[] = [];
        for (const n of nodes) {
          const slots = (await command(n.port, 'CLUSTER', 'SLOTS')) as [number, number, ...[string, number][]][];
          for (const [lo, hi, , ...replicas] of slots)
            if (replicas.length === 0) problems.push(`${n.port} lists slots ${lo}-${hi} without a replica`);
        }
        return problems;
      },
      30_000,
    );
  };
  /** TLS port -> plain port, from each node's `--tls-port` (see {@link PlainOf}). */
  const plain = new Map<number, number>();
  const plainOf: PlainOf = (port) => plain.get(port) ?? port;
  const problems = () => clusterProblems(nodes, MASTERS, plainOf);
  try {
    // Ports first (one at a time, so none is handed out twice), then the servers side by side.
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await freePort(true));
    const extra = new Map<number, readonly string[]>();
    const taken = new Set(ports.flatMap((p) => [p, p + 10_000]));
    for (const port of ports) {
      const args = (await options.nodeArgs?.(port, taken)) ?? [];
      const tls = args.indexOf('--tls-port');
      if (tls !== -1) plain.set(Number(args[tls + 1]), port);
      extra.set(port, args);
    }
    const started = await Promise.allSettled(
      ports.map((port) =>
        startNode(port, join(root, String(port)), {
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
            ...(extra.get(port) ?? []),
          ],
        }),
      ),
    );
    for (const r of started) if (r.status === 'fulfilled') nodes.push(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes']);
    await settle('a whole cluster (3 masters with a linked replica each, seen alike by every node)', problems, 30_000);
    await warm();
  } catch (err) {
    for (const n of nodes) await n.kill();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return {
    kind: 'cluster',
    root,
    nodes,
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    async masterOf(slot) {
      const asked = await live();
      const slots = (await command(asked.port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const range = slots.find(([lo, hi]) => slot >= lo && slot <= hi);
      if (range === undefined)
        throw new Error(`slot ${slot} is not served, ${describeShape(shapeOf(asked.port, await clusterNodes(asked.port)))}`);
      return byPort(range[2][1]);
    },
    async replicaOf(port) {
      const s = await shape();
      const shard = s.shards.find((x) => x.master === port);
      if (shard === undefined) throw new Error(`127.0.0.1:${port} is not a master serving slots now, ${describeShape(s)}`);
      const replica = shard.replicas[0];
      if (replica === undefined)
        throw new Error(`the master 127.0.0.1:${port} has no replica now (a failover changed the pairing?), ${describeShape(s)}`);
      const role = (await command(replica, 'ROLE')) as [string, string, number, string];
      if (role[0] !== 'slave' || plainOf(Number(role[2])) !== port || role[3] !== 'connected')
        throw new Error(
          `127.0.0.1:${replica} says ROLE ${JSON.stringify(role.slice(0, 4))}, not a connected replica of ${port}, ${describeShape(s)}`,
        );
      return byPort(replica);
    },
    shape,
    problems,
    async restore(timeoutMs = 60_000) {
      for (const n of nodes) if (!n.running) await n.restart();
      // A node that does not answer is named by problems() below.
      for (const n of nodes) {
        await command(n.port, 'CLIENT', 'UNPAUSE').catch(() => undefined);
        await command(n.port, 'CONFIG', 'SET', 'cluster-replica-no-failover', 'no').catch(() => undefined);
      }
      await settle(
        'a whole cluster again (3 masters with a linked replica each, seen alike by every node)',
        async () => {
          const found = await problems();
          if (found.length > 0) await reattach();
          return found;
        },
        timeoutMs,
      );
      await warm();
    },
    async stop() {
      for (const n of nodes) await n.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };

  /**
   * A master left without a replica gets one: a master of no slots, or the second replica of
   * another master, is told CLUSTER REPLICATE. Only when every node agrees on what it sees
   * (never in the middle of a failover or a node's rejoining).
   */
  async function reattach(): Promise<void> {
    const views: ClusterNodeLine[][] = [];
    for (const n of nodes) {
      if (!n.running) return;
      if (!String(await command(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return;
      views.push(await clusterNodes(n.port));
    }
    const shapes = views.map((v, i) => shapeOf(nodes[i]?.port ?? 0, v));
    if (new Set(shapes.map((x) => JSON.stringify(x.shards))).size !== 1) return;
    const s = shapes[0] as ClusterShape;
    const lines = views[0] as ClusterNodeLine[];
    const idOf = (port: number) => lines.find((l) => l.port === port)?.id;
    const spares = [
      ...lines.filter((l) => working(l) && l.flags.includes('master') && l.slots.length === 0).map((l) => l.port),
      ...s.shards.flatMap((sh) => sh.replicas.slice(1)),
    ];
    for (const orphan of s.shards.filter((sh) => sh.replicas.length === 0)) {
      const spare = spares.shift();
      const id = idOf(orphan.master);
      if (spare === undefined || id === undefined) return;
      await command(spare, 'CLUSTER', 'REPLICATE', id);
    }
  }
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
  /** The data nodes: the first is the initial master (ask `master()` which one is now). */
  readonly dataNodes: readonly RedisNode[];
  readonly sentinels: readonly RedisNode[];
  /** `redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<master>` */
  readonly url: string;
  /**
   * The data node that a quorum (2) of the sentinels names as master now; throws naming what
   * each sentinel says when they do not agree (in the middle of a failover, say).
   */
  master(): Promise<RedisNode>;
  /** The linked replicas of that master now: those the sentinels list as healthy, confirmed by each node's own ROLE. */
  replicas(): Promise<RedisNode[]>;
  /**
   * What differs from the shape it started with (every process running; the sentinels agree
   * on a master that has 2 linked replicas; each sentinel sees it up, 2 healthy replicas, 2
   * other sentinels and a quorum); empty when whole.
   */
  problems(): Promise<string[]>;
  /**
   * Brings the shape back: restarts a killed sentinel, waits for the sentinels to agree on a
   * running master (a killed master gets Sentinel's failover first; is restarted as master
   * only if none came), brings every other data node back as its replica (restarted with
   * --replicaof, or told REPLICAOF), and waits until `problems()` is empty; throws naming
   * what is still wrong after `timeoutMs`.
   */
  restore(timeoutMs?: number): Promise<void>;
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

/** A flat `field value field value ...` reply (SENTINEL MASTER, an entry of SENTINEL REPLICAS) as a map. */
function fields(reply: unknown): Map<string, string> {
  const m = reply as string[];
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < m.length; i += 2) f.set(String(m[i]), String(m[i + 1]));
  return f;
}

const QUORUM = 2;

/** Starts a master, 2 replicas and 3 sentinels (quorum 2), and waits until they all see each other. */
export async function startSentinel(options: SentinelOptions = {}): Promise<SentinelStack> {
  const root = mkdtempSync(join(tmpdir(), 'rampart-sentinel-'));
  const masterName = options.masterName ?? 'mymaster';
  const conf = { masterName, downAfterMs: options.downAfterMs ?? 2000, failoverTimeoutMs: options.failoverTimeoutMs ?? 5000 };
  const detached = options.detached ?? false;
  const dataNodes: RedisNode[] = [];
  const sentinels: RedisNode[] = [];

  const master = async (): Promise<RedisNode> => {
    const votes = new Map<number, number>();
    const answers: string[] = [];
    for (const s of sentinels) {
      if (!s.running) {
        answers.push(`sentinel ${s.port} is not running`);
        continue;
      }
      try {
        const [, port] = (await command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
        votes.set(Number(port), (votes.get(Number(port)) ?? 0) + 1);
        answers.push(`sentinel ${s.port} names ${port}`);
      } catch (err) {
        answers.push(`sentinel ${s.port}: ${said(err)}`);
      }
    }
    const [port, count] = [...votes].sort((x, y) => y[1] - x[1])[0] ?? [0, 0];
    const node = dataNodes.find((d) => d.port === port);
    if (count < QUORUM || node === undefined)
      throw new Error(`no quorum of sentinels names one master of ${masterName}: ${answers.join(', ')}`);
    return node;
  };

  const replicas = async (): Promise<RedisNode[]> => {
    const m = await master();
    const listed = new Map<number, number>();
    for (const s of sentinels) {
      if (!s.running) continue;
      try {
        for (const entry of (await command(s.port, 'SENTINEL', 'REPLICAS', masterName)) as unknown[]) {
          const f = fields(entry);
          if (f.get('flags') === 'slave' && f.get('master-link-status') === 'ok' && f.get('master-port') === String(m.port))
            listed.set(Number(f.get('port')), (listed.get(Number(f.get('port'))) ?? 0) + 1);
        }
      } catch {
        // ask the others
      }
    }
    const out: RedisNode[] = [];
    for (const d of dataNodes) {
      if ((listed.get(d.port) ?? 0) < QUORUM || !d.running) continue;
      const role = (await command(d.port, 'ROLE').catch(() => [])) as [string?, string?, number?, string?];
      if (role[0] === 'slave' && Number(role[2]) === m.port && role[3] === 'connected') out.push(d);
    }
    return out;
  };

  const problems = async (): Promise<string[]> => {
    const found: string[] = [];
    for (const n of [...dataNodes, ...sentinels]) if (!n.running) found.push(`${n.port} is not running (killed, not restarted)`);
    let m: RedisNode;
    try {
      m = await master();
    } catch (err) {
      return [...found, said(err)];
    }
    try {
      const repl = await info(m.port, 'replication');
      const online = [...repl].filter(([k, v]) => /^slave\d+$/.test(k) && v.includes('state=online')).length;
      if (repl.get('role') !== 'master' || online !== dataNodes.length - 1)
        found.push(`the master ${m.port} says role ${repl.get('role')} with ${online} replicas online (of ${dataNodes.length - 1})`);
    } catch (err) {
      found.push(`the master ${m.port} does not answer (${said(err)})`);
    }
    for (const d of dataNodes) {
      if (d === m || !d.running) continue;
      try {
        const role = (await command(d.port, 'ROLE')) as [string, string, number, string];
        if (role[0] !== 'slave' || Number(role[2]) !== m.port || role[3] !== 'connected')
          found.push(`${d.port} says ROLE ${JSON.stringify(role.slice(0, 4))}, not a connected replica of ${m.port}`);
      } catch (err) {
        found.push(`${d.port} does not answer (${said(err)})`);
      }
    }
    for (const s of sentinels) {
      if (!s.running) continue;
      try {
        const f = fields(await command(s.port, 'SENTINEL', 'MASTER', masterName));
        const healthy = ((await command(s.port, 'SENTINEL', 'REPLICAS', masterName)) as unknown[])
          .map(fields)
          .filter((r) => r.get('flags') === 'slave' && r.get('master-link-status') === 'ok').length;
        if (
          f.get('port') !== String(m.port) ||
          f.get('flags') !== 'master' ||
          healthy !== dataNodes.length - 1 ||
          f.get('num-other-sentinels') !== String(sentinels.length - 1)
        )
          found.push(
            `sentinel ${s.port} sees master ${f.get('port')} (${f.get('flags')}), ${healthy} healthy replicas, ${f.get('num-other-sentinels')} other sentinels`,
          );
        const quorum = String(await command(s.port, 'SENTINEL', 'CKQUORUM', masterName).catch((err: unknown) => said(err)));
        if (!quorum.startsWith('OK')) found.push(`sentinel ${s.port}: CKQUORUM ${quorum}`);
      } catch (err) {
        found.push(`sentinel ${s.port} does not answer (${said(err)})`);
      }
    }
    return found;
  };

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
    await settle(
      'a whole Sentinel set (every sentinel sees the master, 2 healthy replicas, 2 other sentinels, a quorum)',
      problems,
      30_000,
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
    master,
    replicas,
    problems,
    async restore(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (const s of sentinels) if (!s.running) await s.restart();
      // A master killed gets Sentinel's failover first (down-after, then the failover itself);
      // only if none comes is it restarted as master.
      const failoverDue = Date.now() + conf.downAfterMs + 2 * conf.failoverTimeoutMs;
      await settle(
        'the sentinels to agree on a running master',
        async () => {
          const m = await master();
          if (m.running) return [];
          if (Date.now() < failoverDue) return [`the sentinels name ${m.port}, which is not running: waiting for their failover`];
          await m.restart(['--replicaof', 'no', 'one']);
          return [`${m.port} restarted as master (no failover came)`];
        },
        Math.max(0, deadline - Date.now()),
      );
      const m = await master();
      for (const d of dataNodes) {
        if (d === m) continue;
        if (!d.running) {
          await d.restart(['--replicaof', '127.0.0.1', String(m.port)]);
          continue;
        }
        const role = (await command(d.port, 'ROLE').catch(() => [])) as [string?, string?, number?];
        if (role[0] !== 'slave' || Number(role[2]) !== m.port) await command(d.port, 'REPLICAOF', '127.0.0.1', String(m.port));
      }
      await settle(
        `a whole Sentinel set again (master ${m.port} with 2 linked replicas; every sentinel sees them healthy, 2 other sentinels, a quorum)`,
        problems,
        Math.max(0, deadline - Date.now()),
      );
    },
    async stop() {
      for (const n of [...sentinels, ...dataNodes]) await n.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
