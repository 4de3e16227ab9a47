// One span per incoming HTTP request, made with as little work as the semantic conventions
// allow: their required attributes only (and `url.query`, `http.route`, `error.type` where they
// apply), what a sampler may read set before the decision, the rest only on a span that records,
// and nothing per middleware layer. It replaces OpenTelemetry's incoming-request and
// Express instrumentations, which between them cost about as much per unsampled request as per
// sampled one (`npm run bench:tracing`).
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';

/** Options of {@link traceIncomingRequests}. */
export interface IncomingRequestTracingOptions {
  readonly tracer: Tracer;
  /** Requests whose URL starts with one of these make no span (and nothing under them does). */
  readonly ignorePaths: readonly string[];
  /**
   * Honour the caller's `tracestate` and `baggage` as well as its `traceparent` (as far as
   * the global propagator reads them). Default `false`: only `traceparent` is read, so that
   * nothing a caller puts in trace state or baggage gets into the request's context, its spans
   * or the calls it makes. Set it only when every caller is a trusted peer.
   */
  readonly trustIncomingTraceState?: boolean;
}

// What the propagator may read from an untrusted caller: `traceparent`, nothing else.
const TRACEPARENT_ONLY: TextMapGetter<IncomingHttpHeaders> = {
  keys: () => ['traceparent'],
  get: (headers, key) => (key === 'traceparent' ? headers.traceparent : undefined),
};

// The incoming trace context: none when the request carries none (most do not, and extraction
// is skipped), the `traceparent` alone unless the caller is trusted.
function parentContext(headers: IncomingHttpHeaders, trusted: boolean): Context {
  if (!trusted) return headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers, TRACEPARENT_ONLY);
  return headers.traceparent === undefined && headers.baggage === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers);
}

// The methods the semantic conventions know; any other is `_OTHER` (with the original kept).
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;

/** Express's additions to a request, read when the response is done. */
interface RoutedRequest extends IncomingMessage {
  readonly route?: { readonly path?: unknown };
  readonly baseUrl?: unknown;
}

/** `http.route`: the mount path and the matched route's template, when Express matched one. */
function routeOf(req: RoutedRequest): string | undefined {
  const path = req.route?.path;
  if (typeof path !== 'string') return undefined;
  return typeof req.baseUrl === 'string' ? `${req.baseUrl}${path}` : path;
}

// Listeners of the request's and the response's events (body reads, `finish`) are called from
// the connection's callbacks, which carry the context of the connection, not the request's: each
// event of this request is emitted inside its context instead.
function emitIn(ctx: Context, emitter: IncomingMessage | ServerResponse): void {
  const emit = emitter.emit as Emit;
  emitter.emit = function (this: unknown, event: string | symbol, ...args: unknown[]): boolean {
    // Most events already come in it (the async resources of the request carry it on).
    return context.active() === ctx ? emit.call(this, event, ...args) : context.with(ctx, emit, this, event, ...args);
  } as typeof emitter.emit;
}

function end(span: Span, method: string, req: RoutedRequest, res: ServerResponse): void {
  const route = routeOf(req);
  if (route !== undefined) {
    span.setAttribute('http.route', route);
    span.updateName(`${method} ${route}`);
  }
  if (res.headersSent) {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) {
      span.setAttribute('error.type', String(res.statusCode));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}

function patch(proto: { emit: Emit }, scheme: 'http' | 'https', options: IncomingRequestTracingOptions): () => void {
  const { tracer, ignorePaths } = options;
  const trusted = options.trustIncomingTraceState === true;
  const own = Object.hasOwn(proto, 'emit');
  const original = proto.emit;
  proto.emit = function (this: unknown, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'request') return original.call(this, event, ...args);
    const req = args[0] as RoutedRequest;
    const res = args[1] as ServerResponse;
    const url = req.url ?? '/';
    for (const prefix of ignorePaths) if (url.startsWith(prefix)) return original.call(this, event, req, res);
    const q = url.indexOf('?');
    const method = METHODS.has(req.method ?? '') ? (req.method as string) : '_OTHER';
    const parent = parentContext(req.headers, trusted);
    const span = tracer.startSpan(
      method,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': method, 'url.scheme': scheme, 'url.path': q === -1 ? url : url.slice(0, q) },
      },
      parent,
    );
    if (span.isRecording()) {
      if (q !== -1) span.setAttribute('url.query', url.slice(q + 1));
      if (method === '_OTHER') span.setAttribute('http.request.method_original', req.method ?? '');
    }
    const ctx = trace.setSpan(parent, span);
    emitIn(ctx, req);
    emitIn(ctx, res);
    // `close` comes after `finish`, and also when the client went away first. An unsampled span
    // has nothing to end.
    if (span.isRecording()) res.on('close', () => end(span, method, req, res));
    return context.with(ctx, original, this, event, req, res);
  };
  return () => {
    if (own) proto.emit = original;
    else delete (proto as { emit?: Emit }).emit;
  };
}

/**
 * Makes a server span for every request of every `http` and `https` server of the process:
 * named `METHOD route` (`GET /v1/notes/:id`) when Express matched a route, else `METHOD`; with
 * the attributes the HTTP semantic conventions require (`http.request.method`, `url.path`,
 * `url.scheme`, and where they apply `url.query`, `http.route`, `http.response.status_code`,
 * `error.type`, `http.request.method_original`), all redacted on export like any attribute, and
 * an error status for a 5xx. The recommended ones that identify the client (`client.address`,
 * `user_agent.original`) and the rest of them are left out. The incoming `traceparent` is
 * honoured; `tracestate` and `baggage` only with `trustIncomingTraceState`. The span is the active one for everything the request does, its body's and its
 * response's events included. Returns the function that removes it.
 */
export function traceIncomingRequests(options: IncomingRequestTracingOptions): () => void {
  const undo = [
    patch(http.Server.prototype as unknown as { emit: Emit }, 'http', options),
    patch(https.Server.prototype as unknown as { emit: Emit }, 'https', options),
  ];
  return () => {
    for (const u of undo) u();
  };
}
