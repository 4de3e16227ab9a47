// The load generator, run as its own process: autocannon against one URL, the client key in
// the `x-client-key` header rotating over `keys` distinct values. Prints one JSON line.
// Closed loop: each connection sends its next request when the last is answered (paced load:
// bench/paced.ts). argv: url connections durationSec keys
import autocannon from 'autocannon';
import { clientKey } from './limits';

const [url = '', connections = '50', duration = '10', keys = '1'] = process.argv.slice(2);
const nKeys = Number(keys);
let next = 0;

const instance = autocannon(
  {
    url,
    connections: Number(connections),
    duration: Number(duration),
    requests: [
      {
        setupRequest: (req) => {
          req.headers = { ...req.headers, 'x-client-key': clientKey(next++ % nKeys) };
          return req;
        },
      },
    ],
  },
  (err, result) => {
    if (err) {
      process.stderr.write(`${String(err)}\n`);
      process.exitCode = 1;
      return;
    }
    const statuses: Record<string, number> = {};
    for (const [code, n] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = n.count ?? 0;
    process.stdout.write(
      `${JSON.stringify({
        requestsPerSecond: result.requests.average,
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        total: result.requests.total,
        errors: result.errors,
        timeouts: result.timeouts,
        statuses,
      })}\n`,
    );
  },
);
process.once('SIGINT', () => instance.stop());
