// Open-loop load for the shedding benchmark, run as its own process: sends GET `url` at a fixed
// rate (requests do not wait for each other, as independent users do not), for `seconds`, and
// records each answer's status and latency. Prints one JSON line: goodput, latency of the 200s,
// counts of 503s, timeouts and errors; goodputWithin1s counts only the 200s answered within 1 s.
// With a negative rate, -N keep-alive connections each send their next request as soon as the
// last is answered instead (closed loop: clients behind a proxy's connection pool), waiting out
// a 503's Retry-After first, as well-behaved clients do.
// argv: url ratePerSecond seconds
import { Agent, get } from 'node:http';

const [url = '', rateArg = '500', secondsArg = '10'] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const agent = new Agent({ keepAlive: true, maxSockets: 2048 });
const ok: number[] = [];
const counts: Record<string, number> = {};
let pending = 0;

/** Sends one request and records its outcome; `then` gets the wait a 503 asked for, ms. */
function one(then: (retryAfterMs: number) => void = () => undefined): void {
  const t = performance.now();
  sent++;
  pending++;
  const req = get(url, { agent, timeout: 10_000 }, (res) => {
    res.resume();
    res.on('end', () => {
      pending--;
      counts[String(res.statusCode)] = (counts[String(res.statusCode)] ?? 0) + 1;
      if (res.statusCode === 200) ok.push(performance.now() - t);
      then(res.statusCode === 503 ? Number(res.headers['retry-after'] ?? 1) * 1000 : 0);
    });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (err) => {
    pending--;
    const k = err.message === 'timeout' ? 'timeout' : 'error';
    counts[k] = (counts[k] ?? 0) + 1;
    then(0);
  });
}

const start = performance.now();
let sent = 0;
if (rate < 0) {
  // A well-behaved client waits as long as Retry-After says before trying again.
  const loop = (): void => {
    if (performance.now() - start >= seconds * 1000) return;
    one((wait) => (wait > 0 ? setTimeout(loop, wait) : loop()));
  };
  for (let i = 0; i < -rate; i++) loop();
}
const tick = setInterval(() => {
  const due = rate < 0 ? 0 : Math.floor(((performance.now() - start) / 1000) * rate);
  while (sent < due) one();
  if (performance.now() - start >= seconds * 1000) {
    clearInterval(tick);
    const waitAll = setInterval(() => {
      if (pending > 0) return;
      clearInterval(waitAll);
      const sorted = ok.sort((a, b) => a - b);
      const pct = (p: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
      process.stdout.write(
        `${JSON.stringify({ sent, seconds, goodput: Math.round(ok.length / seconds), goodputWithin1s: Math.round(ok.filter((ms) => ms <= 1000).length / seconds), okP50Ms: pct(50), okP99Ms: pct(99), okMaxMs: pct(100), counts })}\n`,
      );
      agent.destroy();
    }, 50);
  }
}, 5);
