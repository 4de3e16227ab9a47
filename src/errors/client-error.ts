// Listeners of the HTTP server's own events: requests refused before they reach the app,
// answered in the same JSON shape as the app's errors.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { REQUEST_ID_HEADER, requestIdFor } from '../request-id';
import { ERROR_STATUS, type ErrorCode } from './codes';
import { ERROR_CONTENT_TYPE, errorBody } from './error-body';
import { sendError } from './send-error';

/** What Node's parser errors become; any other parser error is {@link MALFORMED}. */
const PARSER_ERRORS: Readonly<Record<string, readonly [ErrorCode, string]>> = Object.freeze({
  HPE_HEADER_OVERFLOW: ['HEADERS_TOO_LARGE', 'Request headers are too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['PAYLOAD_TOO_LARGE', 'Request chunk extensions are too large'],
});
const MALFORMED: readonly [ErrorCode, string] = ['BAD_REQUEST', 'Malformed HTTP request'];

/**
 * A server socket as Node's HTTP server uses it: `_httpMessage` is the response being written
 * on it, if any (private to Node, but what Node's own clientError handling reads too); the
 * responses to later pipelined requests wait in Node's queue and take its place in turn.
 */
type ServerSocket = Duplex & { _httpMessage?: ServerResponse | null };

/** The raw bytes of an answer written outside any `ServerResponse`, always closing. */
function rawAnswer(status: number, headers: readonly string[], body = ''): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `${REQUEST_ID_HEADER}: ${randomUUID()}\r\n` +
    headers.map((h) => `${h}\r\n`).join('') +
    'Connection: close\r\n\r\n' +
    body
  );
}

/** The raw bytes of an error answer in our JSON shape, the body from {@link errorBody}. */
function rawErrorAnswer(code: ErrorCode, detail: string): string {
  const json = JSON.stringify(errorBody(code, detail));
  return rawAnswer(ERROR_STATUS[code], [`Content-Type: ${ERROR_CONTENT_TYPE}`, `Content-Length: ${Buffer.byteLength(json)}`], json);
}

/**
 * A listener for the HTTP server's `clientError` event: a request Node's parser refuses gets
 * our JSON body — 431 `HEADERS_TOO_LARGE` for headers over `--max-http-header-size`, 413
 * `PAYLOAD_TOO_LARGE` for oversized chunk extensions, 400 `BAD_REQUEST` for a malformed request
 * line, header or chunked body — with a new `X-Request-Id` and `Connection: close`, and the
 * connection is closed. A client too slow to send its headers gets 408 with an empty body, as
 * from Node (plus the `X-Request-Id`).
 *
 * Requests parsed whole before the bad bytes (pipelining) are answered first, in order: the
 * answer waits for the response in flight on the connection (Node queues the later ones behind
 * it). When the bad bytes are in the body of the request being answered, that request gets the
 * error at once, or, if its response has already begun, the connection is only closed. Without
 * this listener Node answers with an empty body, or drops what was parsed before.
 * `server.on('clientError', clientErrorListener())`.
 */
export function clientErrorListener(): (err: Error & { code?: string }, socket: Duplex) => void {
  // Node reports a connection again when more bytes reach the failed parser, or on a timeout,
  // while an earlier response is still being written: one answer per connection.
  const answering = new WeakSet<Duplex>();
  return (err, socket) => {
    const s = socket as ServerSocket;
    if (answering.has(s)) {
      if (err.code === 'ECONNRESET') s.destroy();
      return;
    }
    if (err.code === 'ECONNRESET' || !s.writable) {
      s.destroy();
      return;
    }
    answering.add(s);
    // Nothing after the bad bytes can be parsed: stop reading while earlier answers finish.
    s.pause();
    const answer = (): void => {
      if (s.destroyed || !s.writable) {
        s.destroy();
        return;
      }
      const inFlight = s._httpMessage;
      if (inFlight !== null && inFlight !== undefined && !inFlight.writableFinished) {
        if (inFlight.req.complete) {
          // Parsed whole before the bad bytes: its answer (and those queued behind it) go first.
          const next = (): void => {
            inFlight.off('finish', next);
            inFlight.off('close', next);
            answer();
          };
          inFlight.once('finish', next);
          inFlight.once('close', next);
          return;
        }
        // The bad bytes are in this request's own body. Once its answer has begun, anything
        // written after it would corrupt it: close only.
        if (inFlight.headersSent) {
          s.destroy();
          return;
        }
      }
      // end() then destroy(): the server's sockets allow half-open connections, so end() alone
      // would keep the descriptor until the client closes its side.
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        s.end(rawAnswer(408, []), () => s.destroy());
        return;
      }
      const [code, detail] = PARSER_ERRORS[err.code ?? ''] ?? MALFORMED;
      s.end(rawErrorAnswer(code, detail), () => s.destroy());
    };
    answer();
  };
}

/**
 * A listener for the HTTP server's `checkExpectation` event: a request whose `Expect` header
 * is anything but `100-continue` gets 417 `EXPECTATION_FAILED` in our JSON shape (Node's own
 * 417 has an empty body), with its `X-Request-Id` and `Connection: close` (a client waiting
 * for an interim answer may never send the body it announced). The request does not reach the
 * app. `100-continue` never comes here: Node sends `100 Continue` and serves the request.
 * `server.on('checkExpectation', checkExpectationListener())`.
 */
export function checkExpectationListener(): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    res.setHeader(REQUEST_ID_HEADER, requestIdFor(req.headers['x-request-id']));
    sendError(res, 'EXPECTATION_FAILED', 'The only expectation supported is "Expect: 100-continue"', {
      closeConnection: true,
    });
  };
}
