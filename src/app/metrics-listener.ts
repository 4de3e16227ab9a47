import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import { ConfigError, errorHandler, METRICS_PATH, notFoundHandler, requestId, type Metrics } from '../index';
import { checkHostHeader } from './check-host-header';
import { createHttpServer } from './http-server';

/** How long a scrape in flight gets to finish once the metrics listener closes. */
const CLOSE_GRACE_MS = 1_000;

/** A listener of its own for `/metrics` (METRICS_PORT, METRICS_HOST). */
export interface MetricsListener {
  /** The port it listens on (the one the OS chose for METRICS_PORT=0). */
  readonly port: number;
  /** The address it is bound to. */
  readonly address: string;
  /** Stops accepting; a scrape in flight gets {@link CLOSE_GRACE_MS}, then every socket is ended. */
  close(): Promise<void>;
}

/** Where the metrics listener listens, and who hears of a failed scrape. */
export interface MetricsListenerOptions {
  /** 0: any free port. */
  readonly port: number;
  /** undefined: every interface. */
  readonly host: string | undefined;
  readonly onInternalError?: (err: unknown) => void;
}

/** `GET /metrics` and nothing else: any other path is 404 `NOT_FOUND` in our JSON. */
export function createMetricsApp(metrics: Metrics, onInternalError?: (err: unknown) => void): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestId());
  app.use(checkHostHeader());
  app.get(METRICS_PATH, metrics.handler());
  app.use(notFoundHandler());
  app.use(errorHandler(onInternalError === undefined ? {} : { onInternalError }));
  return app;
}

/** The refusal of a listen error the environment can fix; `undefined` for any other. */
function refusalOf(err: NodeJS.ErrnoException, port: number, host: string | undefined): ConfigError | undefined {
  const where = host === undefined ? 'every interface' : `METRICS_HOST=${host}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new ConfigError(
        'METRICS_PORT',
        `METRICS_PORT=${port} is already in use on ${where}. Fix: set METRICS_PORT to a free port (or stop what listens there).`,
      );
    case 'EACCES':
      return new ConfigError(
        'METRICS_PORT',
        `METRICS_PORT=${port} may not be bound by this user (EACCES). Fix: set METRICS_PORT to a port above 1023.`,
      );
    case 'EADDRNOTAVAIL':
    case 'EAFNOSUPPORT':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return host === undefined
        ? undefined
        : new ConfigError(
            'METRICS_HOST',
            `METRICS_HOST=${host} is not an address of this machine (${err.code}). Fix: set METRICS_HOST to one of its addresses (e.g. 0.0.0.0 or 127.0.0.1), or unset it to bind every interface.`,
          );
    default:
      return undefined;
  }
}

/**
 * Starts the metrics listener and resolves once it listens. A port in use, or an address that
 * is not this machine's, rejects with a {@link ConfigError} naming METRICS_PORT or METRICS_HOST.
 */
export async function startMetricsListener(metrics: Metrics, options: MetricsListenerOptions): Promise<MetricsListener> {
  const server = createHttpServer(createMetricsApp(metrics, options.onInternalError));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(refusalOf(err, options.port, options.host) ?? err);
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const { port, address } = server.address() as AddressInfo;
  return {
    port,
    address,
    close: () =>
      new Promise<void>((resolve) => {
        // close() ends the idle keep-alive sockets (Prometheus keeps one); a scrape in flight
        // finishes, or is cut after the grace.
        const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
      }),
  };
}
