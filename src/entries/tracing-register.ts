// Preload entry: `node --require rampart/tracing/register app.js`. Starts tracing before
// express, pg and ioredis load, when TRACING_ENABLED=true; otherwise does nothing.
//
// It is loaded into applications that are not rampart's sample API, so it reads the tracing
// variables only (TRACING_ENABLED, then the OTEL_* ones), never the application's. And it never
// stops the application: when it cannot trace (a malformed tracing variable, an OpenTelemetry
// package not installed) it says why in one stderr line and the process goes on untraced.
// Plain stderr lines, not a logger: the application's logger is not loaded yet, and rampart
// depends on none.
import { loadTracingConfig, tracingEnabled, type TracingConfig } from '../config/tracing-config';
import { ConfigError } from '../config/variables';
import { setActiveTracing } from '../tracing/active-tracing';
import { defaultEndpoint, startTracing, type TracingLogger } from '../tracing/start-tracing';
import { MissingTracingPackagesError } from '../tracing/tracing-packages';

/** Longest line written; an SDK diagnostic can carry a whole stack. */
const MAX_LINE = 1_000;

function say(message: string): void {
  // One line whatever the message holds: log collectors split on newlines.
  const line = message.replace(/\s*[\r\n]+\s*/g, ' ');
  process.stderr.write(`rampart tracing: ${line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}...` : line}\n`);
}

function withArgs(obj: object, msg: string): string {
  const args = (obj as { args?: unknown }).args;
  return Array.isArray(args) && args.length > 0 ? `${msg} ${args.map(String).join(' ')}` : msg;
}

// The SDK's own diagnostics (export failures and the like), at warn and above.
const stderrLogger: TracingLogger = {
  warn: (obj, msg) => say(withArgs(obj, msg)),
  error: (obj, msg) => say(withArgs(obj, msg)),
};

function start(): void {
  let config: TracingConfig;
  try {
    // TRACING_ENABLED first: an application that does not trace is not told about OTEL_*.
    if (!tracingEnabled()) return;
    config = loadTracingConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    say(`not started, the process runs without tracing: ${err.message}`);
    return;
  }
  try {
    setActiveTracing(startTracing({ config, logger: stderrLogger }));
  } catch (err) {
    if (!(err instanceof MissingTracingPackagesError)) throw err;
    say(`not started, the process runs without tracing: ${err.message}`);
    return;
  }
  if (config.endpoint === undefined) {
    const url = defaultEndpoint(config.protocol);
    say(
      `OTEL_EXPORTER_OTLP_ENDPOINT is not set: exporting to ${url}, the OTLP default. Fix: set OTEL_EXPORTER_OTLP_ENDPOINT to the collector URL (${url} to keep this one without this line).`,
    );
  }
}

start();
