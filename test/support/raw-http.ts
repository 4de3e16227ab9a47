// Raw HTTP/1.1 over a socket, for input no client library would send: bytes go out as they are
// and every answer on the connection is read back, in order.
import { once } from 'node:events';
import { connect } from 'node:net';

/** One response as read off the wire. */
export interface RawResponse {
  readonly status: number;
  /** Lower-case names; a repeated header keeps its last value. */
  readonly headers: Record<string, string>;
  /** Decoded as UTF-8 (chunked bodies de-chunked). */
  readonly body: string;
  /** All of the body has arrived (by Content-Length or the last chunk; 1xx: always). */
  readonly complete: boolean;
}

/** Everything the server sent, and whether it closed the connection by itself. */
export interface RawExchange {
  readonly text: string;
  readonly responses: readonly RawResponse[];
  /** The server ended the connection. */
  readonly closedByServer: boolean;
}

/** Options of {@link rawExchange}. */
export interface RawOptions {
  /**
   * Stop reading once this holds, without waiting for the server to close (the client's side
   * stays open: Node's server drops a response still in the making when the client half-closes).
   * Default: read until the server closes or `timeoutMs` passes.
   */
  readonly until?: (responses: readonly RawResponse[]) => boolean;
  readonly timeoutMs?: number;
}

/** Splits what the server sent into responses (1xx included), using Content-Length or chunking. */
export function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(statusLine.split(' ')[1] ?? 0);
    rest = rest.slice(end + 4);
    let body = '';
    let complete = true;
    if (status >= 200 && headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      complete = rest.length >= n;
      body = rest.slice(0, n);
      rest = rest.slice(n);
    } else if (status >= 200 && /chunked/i.test(headers['transfer-encoding'] ?? '')) {
      complete = false;
      for (;;) {
        const eol = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, eol), 16);
        if (eol === -1 || Number.isNaN(size) || rest.length < eol + 2 + size + 2) break;
        body += rest.slice(eol + 2, eol + 2 + size);
        rest = rest.slice(eol + 2 + size + 2);
        if (size === 0) {
          complete = true;
          break;
        }
      }
    } else if (status >= 200) {
      // Delimited by the close of the connection.
      body = rest;
      rest = '';
      complete = false;
    }
    // Lengths count bytes, so the text is latin-1 (one character a byte); bodies are UTF-8.
    out.push({ status, headers, body: Buffer.from(body, 'latin1').toString('utf8'), complete });
  }
  return out;
}

/**
 * Sends `bytes` as they are (no client-side checks) and reads every answer on the connection,
 * keeping the client's side open, as a client waiting for its answers does.
 */
export async function rawExchange(port: number, bytes: string | Buffer, options: RawOptions = {}): Promise<RawExchange> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  let closedByServer = false;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (options.until?.(parseResponses(Buffer.concat(chunks).toString('latin1'))) === true) resolve();
    });
    socket.once('end', () => {
      closedByServer = true;
      resolve();
    });
    socket.once('close', () => resolve());
  });
  socket.on('error', () => undefined);
  socket.write(bytes);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((r) => (timer = setTimeout(r, options.timeoutMs ?? 5000)))]);
  clearTimeout(timer);
  socket.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  return { text, responses: parseResponses(text), closedByServer };
}

const firstFinal = (responses: readonly RawResponse[]) => responses.find((r) => r.status >= 200);

/** The first final (non-1xx) answer to `bytes`; status 0 when there was none. */
export async function raw(port: number, bytes: string | Buffer, options: Omit<RawOptions, 'until'> = {}): Promise<RawResponse> {
  const { responses } = await rawExchange(port, bytes, { ...options, until: (rs) => firstFinal(rs)?.complete === true });
  return firstFinal(responses) ?? { status: 0, headers: {}, body: '', complete: false };
}
