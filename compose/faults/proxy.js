// The network fault drill's TCP proxy (compose profile `faults`; scripts/compose/faults-drill.ts).
// It stands between the app replicas and Redis / Postgres and adds latency on command: every
// byte a client sends reaches the server `latencyMs` later (a round trip grows by that much),
// in order. Packet loss and partitions are not made here: the drill drops packets with iptables
// in the replica's own network namespace, where TCP sees them as real losses.
//
//   ROUTES="6379=redis:6379,5432=pg-primary:5432"   listen port = upstream host:port
//   CONTROL_PORT=8474                                GET /routes, PUT /routes/<port> {"latencyMs": n}
//
// Plain Node, no dependencies: it runs in the node image as it is.
'use strict';
const http = require('node:http');
const net = require('node:net');

const routes = new Map();
for (const entry of (process.env.ROUTES || '').split(',').filter(Boolean)) {
  const [listen, target] = entry.split('=');
  const [host, port] = target.split(':');
  routes.set(Number(listen), { host, port: Number(port), latencyMs: 0, connections: 0, accepted: 0, bytes: 0 });
}
if (routes.size === 0) {
  process.stderr.write('faults: ROUTES is empty; set it as "6379=redis:6379,5432=pg-primary:5432"\n');
  process.exit(2);
}

/** Data from the client, delayed by the route's latency at the time it arrived, kept in order. */
function delayed(route, from, to) {
  const queue = [];
  let timer;
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length > 0 && queue[0].at <= now) to.write(queue.shift().chunk);
    if (queue.length > 0) timer = setTimeout(flush, queue[0].at - now);
  };
  from.on('data', (chunk) => {
    route.bytes += chunk.length;
    if (route.latencyMs === 0 && queue.length === 0) {
      to.write(chunk);
      return;
    }
    const last = queue.length > 0 ? queue[queue.length - 1].at : 0;
    queue.push({ at: Math.max(Date.now() + route.latencyMs, last), chunk });
    if (timer === undefined) timer = setTimeout(flush, queue[0].at - Date.now());
  });
  return () => timer !== undefined && clearTimeout(timer);
}

for (const [listen, route] of routes) {
  net
    .createServer({ noDelay: true }, (client) => {
      route.connections++;
      route.accepted++;
      const server = net.connect({ host: route.host, port: route.port, noDelay: true });
      const stop = delayed(route, client, server);
      server.on('data', (chunk) => client.write(chunk));
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        route.connections--;
        stop();
        client.destroy();
        server.destroy();
      };
      for (const s of [client, server]) {
        s.on('error', close);
        s.on('close', close);
      }
    })
    .listen(listen, '0.0.0.0');
}

http
  .createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const list = () => Object.fromEntries([...routes].map(([p, r]) => [p, { ...r }]));
    if (req.method === 'GET' && req.url === '/routes') return reply(200, list());
    const m = /^\/routes\/(\d+)$/.exec(req.url || '');
    const route = m && routes.get(Number(m[1]));
    if (req.method !== 'PUT' || !route) return reply(404, { error: 'NOT_FOUND' });
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let latencyMs;
      try {
        latencyMs = JSON.parse(body).latencyMs;
      } catch {
        latencyMs = undefined;
      }
      if (!Number.isInteger(latencyMs) || latencyMs < 0 || latencyMs > 60_000)
        return reply(400, { error: 'BAD_REQUEST', message: 'latencyMs: an integer from 0 to 60000' });
      route.latencyMs = latencyMs;
      reply(200, list());
    });
  })
  .listen(Number(process.env.CONTROL_PORT || 8474), '0.0.0.0');
process.stdout.write(`faults: ${[...routes].map(([p, r]) => `${p} -> ${r.host}:${r.port}`).join(', ')}\n`);
// docker stop sends SIGTERM; nothing to drain.
process.on('SIGTERM', () => process.exit(0));
