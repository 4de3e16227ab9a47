// `npm run stack:up` / `npm run stack:down`: the compose environment's Redis topologies as local
// processes (no Docker): a 6-node Cluster and a Sentinel set, on free ports under 127.0.0.1.
// `up` prints the REDIS_URL of each and records every PID in a state file; `down` stops exactly
// those PIDs and removes their dirs.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killPid, startCluster, startSentinel } from './redis-stack';

const STATE = process.env['RAMPART_STACK_STATE'] ?? join(tmpdir(), 'rampart-stack.json');

interface State {
  readonly started: string;
  readonly cluster: { readonly url: string; readonly root: string; readonly pids: number[] };
  readonly sentinel: { readonly url: string; readonly root: string; readonly pids: number[] };
}

async function up(): Promise<void> {
  if (existsSync(STATE)) {
    console.error(`a stack is already up (${STATE}); run npm run stack:down first`);
    process.exit(1);
  }
  const cluster = await startCluster({ detached: true });
  const sentinel = await startSentinel({ detached: true });
  const state: State = {
    started: new Date().toISOString(),
    cluster: { url: cluster.url, root: cluster.root, pids: cluster.nodes.map((n) => n.pid) },
    sentinel: { url: sentinel.url, root: sentinel.root, pids: [...sentinel.dataNodes, ...sentinel.sentinels].map((n) => n.pid) },
  };
  writeFileSync(STATE, `${JSON.stringify(state, null, 2)}\n`);
  console.log(`Cluster (3 masters, 3 replicas), ports ${cluster.nodes.map((n) => n.port).join(', ')}:`);
  console.log(`  REDIS_URL=${cluster.url}`);
  console.log(
    `Sentinel (master ${sentinel.dataNodes[0]?.port}, replicas ${sentinel.dataNodes
      .slice(1)
      .map((n) => n.port)
      .join(', ')}, quorum 2):`,
  );
  console.log(`  REDIS_URL=${sentinel.url}`);
  console.log(`State: ${STATE}. Stop with: npm run stack:down`);
  process.exit(0);
}

function down(): void {
  if (!existsSync(STATE)) {
    console.log('no stack is up');
    return;
  }
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as State;
  for (const pid of [...state.cluster.pids, ...state.sentinel.pids]) killPid(pid);
  rmSync(state.cluster.root, { recursive: true, force: true });
  rmSync(state.sentinel.root, { recursive: true, force: true });
  rmSync(STATE, { force: true });
  console.log(`stopped ${state.cluster.pids.length + state.sentinel.pids.length} processes`);
}

const command = process.argv[2];
if (command === 'up') {
  up().catch((err: unknown) => {
    console.error(String(err));
    process.exit(1);
  });
} else if (command === 'down') {
  down();
} else {
  console.error('usage: stack.ts up | down');
  process.exit(2);
}
