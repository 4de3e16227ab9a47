// The paced (open-loop) load generator, run as its own process: requests are due at a fixed
// rate whatever the server does, and each one's latency runs from when it was due, not from
// when it could be sent (corrected for coordinated omission: a stalled server is charged for
// the requests that waited behind it). Microsecond resolution, in an HDR histogram. The client
// key in the `x-client-key` header rotates over `keys` values. Prints one JSON line.
// argv: url rate(requests/s) durationSec keys connections
import { Agent, request } from 'node:http';
import * as hdr from 'hdr-histogram-js';
import { clientKey } from './limits';

const [url = '', rateArg = '1000', durationArg = '10', keysArg = '1', connectionsArg = '50'] = process.argv.slice(2);
const rate = Number(rateArg);
const total = Math.round(rate * Number(durationArg));
const keys = Number(keysArg);
const target = new URL(url);
const agent = new Agent({ keepAlive: true, maxSockets: Number(connectionsArg), scheduling: 'fifo' });
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
const statuses: Record<string, number> = {};
let errors = 0;
let done = 0;
let sent = 0;
const intervalNs = 1e9 / rate;
const start = process.hrtime.bigint();

function fire(i: number): void {
  const due = start + BigInt(Math.round(i * intervalNs));
  const finish = (status: string) => {
    histogram.recordValue(Math.max(1, Number(process.hrtime.bigint() - due) / 1000));
    statuses[status] = (statuses[status] ?? 0) + 1;
    done++;
  };
  const req = request(
    { agent, host: target.hostname, port: target.port, path: target.pathname, headers: { 'x-client-key': clientKey(i % keys) } },
    (res) => {
      res.resume();
      res.once('end', () => finish(String(res.statusCode)));
    },
  );
  req.once('error', () => {
    errors++;
    done++;
  });
  req.end();
}

// Every millisecond, everything that has come due is sent (timers have 1 ms resolution; the
// latency of each request still counts from its own due time).
function tick(): void {
  const elapsedNs = Number(process.hrtime.bigint() - start);
  const due = Math.min(total, Math.floor(elapsedNs / intervalNs) + 1);
  while (sent < due) fire(sent++);
  if (sent < total) setTimeout(tick, 1);
  else waitForAll();
}

function waitForAll(): void {
  const deadline = Date.now() + 30_000;
  const check = () => {
    if (done < total && Date.now() < deadline) {
      setTimeout(check, 10);
      return;
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const ms = (p: number) => Number((histogram.getValueAtPercentile(p) / 1000).toFixed(3));
    process.stdout.write(
      `${JSON.stringify({
        requestsPerSecond: (done - errors) / seconds,
        p50Ms: ms(50),
        p99Ms: ms(99),
        p999Ms: ms(99.9),
        maxMs: Number((histogram.maxValue / 1000).toFixed(3)),
        total: done,
        errors,
        timeouts: total - done,
        statuses,
      })}\n`,
    );
    agent.destroy();
  };
  check();
}

tick();
