// The load-shedding benchmark's server: one route that costs WORK_MS of CPU per request (as a
// template render or a JSON transform would), with rampart's load shedder at its defaults in
// front (SHED=on) or not (SHED=off). env: SHED, WORK_MS (default 4), PORT
import { createServer } from 'node:http';
import express from 'express';
import { createLoadShedder } from '../../src';

const workMs = Number(process.env['WORK_MS'] ?? 4);
const app = express();
app.get('/health/ready', (_req, res) => res.json({ status: 'healthy' }));
if (process.env['SHED'] === 'on') app.use(createLoadShedder());
app.get('/work', (_req, res) => {
  const until = performance.now() + workMs;
  let x = 0;
  while (performance.now() < until) x++;
  res.json({ ok: true, x });
});
createServer(app).listen(Number(process.env['PORT'] ?? 0), '127.0.0.1');
