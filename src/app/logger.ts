import type { IncomingMessage, ServerResponse } from 'node:http';
import pino, { type DestinationStream, type Logger } from 'pino';
import { pinoHttp, type HttpLogger } from 'pino-http';
import {
  HEALTH_PATHS,
  rateLimitFailure,
  REDACTED,
  REQUEST_ID_HEADER,
  redactHeaders,
  redactPathSegment,
  redactUrl,
  requestIdFor,
  requestIdOf,
  type LogLevel,
} from '../index';

/** The sample API's structured logger. Credentials never reach a log line. */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'rampart-sample' },
      // Requests and responses are redacted by their serializers (requestLogger); these catch
      // a credential passed by name in any other log call.
      redact: { paths: ['*.password', '*.token'], censor: REDACTED },
    },
    destination,
  );
}

/** What pino's standard request serializer makes of a request (pino-std-serializers). */
interface LoggedRequest {
  readonly id?: unknown;
  readonly method?: unknown;
  readonly url?: unknown;
  readonly params?: unknown;
  readonly headers?: unknown;
  readonly remoteAddress?: unknown;
  readonly remotePort?: unknown;
}

/** What pino's standard response serializer makes of a response. */
interface LoggedResponse {
  readonly statusCode?: unknown;
  readonly headers?: unknown;
}

const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The request as logged, by the rules spans are exported by (rampart's redactUrl and
 * redactHeaders): the URL with every query value and any credential in its path redacted,
 * credential headers redacted and other header values scrubbed, route parameters judged as
 * path segments. The parsed query is not logged: the URL carries its names.
 */
export function serializeRequest(req: LoggedRequest): Record<string, unknown> {
  const params = isRecord(req.params) && Object.keys(req.params).length > 0 ? req.params : undefined;
  return {
    id: req.id,
    method: req.method,
    url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
    ...(params === undefined
      ? {}
      : {
          params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'string' ? redactPathSegment(v) : REDACTED])),
        }),
    headers: isRecord(req.headers) ? redactHeaders(req.headers) : {},
    remoteAddress: req.remoteAddress,
    remotePort: req.remotePort,
  };
}

/** The response as logged: its status, its headers redacted like the request's (`Set-Cookie`, `Location`...). */
export function serializeResponse(res: LoggedResponse): Record<string, unknown> {
  return { statusCode: res.statusCode, headers: isRecord(res.headers) ? redactHeaders(res.headers) : {} };
}

/**
 * Request logging with the request id `requestId()` gave the response (mounted first in
 * createApp), so the log line and the `X-Request-Id` header agree. Without it, the id is
 * chosen here by the same rule. Requests and responses are logged through
 * {@link serializeRequest} and {@link serializeResponse}.
 */
export function requestLogger(logger: Logger): HttpLogger {
  return pinoHttp({
    logger,
    serializers: { req: serializeRequest, res: serializeResponse },
    genReqId(req: IncomingMessage, res: ServerResponse) {
      const assigned = requestIdOf(res);
      if (assigned !== undefined) return assigned;
      const id = requestIdFor(req.headers['x-request-id']);
      res.setHeader(REQUEST_ID_HEADER, id);
      return id;
    },
    // A request answered by the limiter's fail mode: its line names the store's failure
    // (`connect ECONNREFUSED ...`) rather than "failed with status code 503". Failed requests only.
    customErrorObject(_req, res, _err, logged: Record<string, unknown>) {
      const failure = rateLimitFailure(res);
      return failure === undefined ? logged : { ...logged, err: failure };
    },
    customLogLevel(_req, res, err) {
      if (err !== undefined || res.statusCode >= 500) return 'error';
      if (res.statusCode >= 400) return 'warn';
      return 'info';
    },
    autoLogging: { ignore: (req) => req.url?.startsWith(HEALTH_PATHS.prefix) === true },
  });
}
