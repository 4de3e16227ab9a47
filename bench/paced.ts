// The paced (open-loop) load generator, run as its own process: requests are due at a fixed
// rate whatever the server does, and each one's latency runs from when it was due, not from
// when it could be sent (corrected for coordinated omission: a stalled server is charged for
// the requests that waited behind it). Microsecond resolution, in an HDR histogram. The client
// key in the `x-client-key` header rotates over `keys` values. Prints one JSON line.
//
// HTTP/1.1 over raw keep-alive sockets, one request at a time on each, from prebuilt bytes: on
// a 2-core machine the generator shares the CPU with the server and Redis, and node:http's
// client costs more per request than the server it measures, so its own queueing showed up as
// the server's tail. Answers must carry Content-Length (Express's `res.json` does).
// argv: url rate(requests/s) durationSec keys connections
import { connect, type Socket } from 'node:net';
import * as hdr from 'hdr-histogram-js';
import { clientKey } from './limits';

const [url = '', rateArg = '1000', durationArg = '10', keysArg = '1', connectionsArg = '50'] = process.argv.slice(2);
const rate = Number(rateArg);
const total = Math.round(rate * Number(durationArg));
const keys = Number(keysArg);
const target = new URL(url);
const port = Number(target.port);
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
const statuses: Record<string, number> = {};
let errors = 0;
let done = 0;
let sent = 0;
const intervalNs = 1e9 / rate;
const start = process.hrtime.bigint();

const requests = new Map<number, Buffer>();
function requestBytes(i: number): Buffer {
  const k = i % keys;
  let b = requests.get(k);
  if (b === undefined) {
    b = Buffer.from(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nx-client-key: ${clientKey(k)}\r\n\r\n`, 'latin1');
    requests.set(k, b);
  }
  return b;
}

const HEADERS_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;
const CLOSE = /\r\nconnection:\s*close/i;

/** One keep-alive connection, one request in flight at a time. */
class Connection {
  private socket: Socket;
  private buffered: Buffer = Buffer.alloc(0);
  /** The due time (ns since start) of the request in flight, or -1. */
  private dueNs = -1;

  constructor() {
    this.socket = this.open();
  }

  private closing = false;

  close(): void {
    this.closing = true;
    this.socket.destroy();
  }

  send(i: number): void {
    this.dueNs = Math.round(i * intervalNs);
    this.socket.write(requestBytes(i));
  }

  private open(): Socket {
    const socket = connect({ host: target.hostname, port, noDelay: true });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      // A request in flight on a closed connection is an error; a new connection takes over.
      if (this.dueNs >= 0) this.finish('error');
      this.buffered = Buffer.alloc(0);
      if (!this.closing) this.socket = this.open();
    });
    return socket;
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const end = this.buffered.indexOf(HEADERS_END);
      if (end < 0) return;
      const head = this.buffered.toString('latin1', 0, end);
      const length = CONTENT_LENGTH.exec(head);
      if (length === null) throw new Error(`an answer without Content-Length: ${head.slice(0, 200)}`);
      const size = end + 4 + Number(length[1]);
      if (this.buffered.length < size) return;
      const close = CLOSE.test(head);
      this.buffered = this.buffered.subarray(size);
      this.finish(head.slice(9, 12));
      if (close) {
        this.socket.destroy();
        return;
      }
      if (this.buffered.length === 0) return;
    }
  }

  private finish(status: string): void {
    const latencyUs = (Number(process.hrtime.bigint() - start) - this.dueNs) / 1000;
    this.dueNs = -1;
    if (status === 'error') errors++;
    else {
      histogram.recordValue(Math.max(1, latencyUs));
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
    done++;
    sendWaiting(this);
  }
}

/** Requests that are due and wait for a free connection, oldest first. */
const waiting: number[] = [];
let waitingHead = 0;
const connections = Array.from({ length: Number(connectionsArg) }, () => new Connection());
const idle: Connection[] = [...connections];

function sendWaiting(c: Connection): void {
  if (waitingHead < waiting.length) c.send(waiting[waitingHead++] as number);
  else idle.push(c);
  if (waitingHead > 4096 && waitingHead * 2 > waiting.length) {
    waiting.splice(0, waitingHead);
    waitingHead = 0;
  }
}

function fire(i: number): void {
  const c = idle.pop();
  if (c !== undefined) c.send(i);
  else waiting.push(i);
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
    for (const c of connections) c.close();
  };
  check();
}

tick();
