// A server for the shutdown comparison: the same routes behind @godaddy/terminus used the plain
// way, or behind rampart's gate and lifecycle. argv: mode (terminus | rampart) delayMs
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTerminus } from '@godaddy/terminus';
import express from 'express';
import { createLifecycle, createShutdownGate } from '../../src';

const [mode = 'rampart', delay = '500'] = process.argv.slice(2);
const delayMs = Number(delay);
const app = express();
const gate = createShutdownGate();
if (mode === 'rampart') app.use(gate);
app.get('/fast', (_req, res) => res.json({ ok: true }));
app.get('/slow', (_req, res) => setTimeout(() => res.json({ ok: true }), 1500));
const server = createServer(app);

if (mode === 'terminus') {
  // The documented recipe (docs/shutdown-and-health.md): health check, a beforeShutdown delay for load balancers, onSignal.
  createTerminus(server, {
    signals: ['SIGTERM'],
    healthChecks: { '/health/live': async () => ({}) },
    beforeShutdown: () => new Promise((resolve) => setTimeout(resolve, delayMs)),
    timeout: 10_000,
    useExit0: true,
    onSignal: async () => undefined,
  });
} else {
  createLifecycle({ server, gate, delayMs, drainTimeoutMs: 10_000, signals: ['SIGTERM'] });
}
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port })}\n`);
});
