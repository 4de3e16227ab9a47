import type { IncomingMessage, ServerResponse } from 'node:http';
import pino, { type DestinationStream, type Logger } from 'pino';
import { pinoHttp, type HttpLogger } from 'pino-http';
import { HEALTH_PATHS, REQUEST_ID_HEADER, requestIdFor, requestIdOf, type LogLevel } from '../index';

/** The sample API's structured logger. Credentials never reach a log line. */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'rampart-sample' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', '*.password', '*.token'],
        censor: '[REDACTED]',
      },
    },
    destination,
  );
}

/**
 * Request logging with the request id `requestId()` gave the response (mounted first in
 * createApp), so the log line and the `X-Request-Id` header agree. Without it, the id is
 * chosen here by the same rule.
 */
export function requestLogger(logger: Logger): HttpLogger {
  return pinoHttp({
    logger,
    genReqId(req: IncomingMessage, res: ServerResponse) {
      const assigned = requestIdOf(res);
      if (assigned !== undefined) return assigned;
      const id = requestIdFor(req.headers['x-request-id']);
      res.setHeader(REQUEST_ID_HEADER, id);
      return id;
    },
    customLogLevel(_req, res, err) {
      if (err !== undefined || res.statusCode >= 500) return 'error';
      if (res.statusCode >= 400) return 'warn';
      return 'info';
    },
    autoLogging: { ignore: (req) => req.url?.startsWith(HEALTH_PATHS.prefix) === true },
  });
}
