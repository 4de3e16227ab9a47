import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The module each optional OpenTelemetry package exports (types only: nothing is loaded here). */
interface PeerModules {
  '@opentelemetry/core': typeof import('@opentelemetry/core');
  '@opentelemetry/exporter-trace-otlp-grpc': typeof import('@opentelemetry/exporter-trace-otlp-grpc');
  '@opentelemetry/exporter-trace-otlp-http': typeof import('@opentelemetry/exporter-trace-otlp-http');
  '@opentelemetry/exporter-trace-otlp-proto': typeof import('@opentelemetry/exporter-trace-otlp-proto');
  '@opentelemetry/instrumentation-http': typeof import('@opentelemetry/instrumentation-http');
  '@opentelemetry/instrumentation-ioredis': typeof import('@opentelemetry/instrumentation-ioredis');
  '@opentelemetry/instrumentation-pg': typeof import('@opentelemetry/instrumentation-pg');
  '@opentelemetry/instrumentation-pino': typeof import('@opentelemetry/instrumentation-pino');
  '@opentelemetry/resources': typeof import('@opentelemetry/resources');
  '@opentelemetry/sdk-node': typeof import('@opentelemetry/sdk-node');
  '@opentelemetry/sdk-trace-base': typeof import('@opentelemetry/sdk-trace-base');
}

/** One of {@link TRACING_PEER_PACKAGES}. */
export type TracingPeerPackage = keyof PeerModules;

// A record, so that the compiler refuses a package missing from the list.
const PEERS: Record<TracingPeerPackage, true> = {
  '@opentelemetry/core': true,
  '@opentelemetry/exporter-trace-otlp-grpc': true,
  '@opentelemetry/exporter-trace-otlp-http': true,
  '@opentelemetry/exporter-trace-otlp-proto': true,
  '@opentelemetry/instrumentation-http': true,
  '@opentelemetry/instrumentation-ioredis': true,
  '@opentelemetry/instrumentation-pg': true,
  '@opentelemetry/instrumentation-pino': true,
  '@opentelemetry/resources': true,
  '@opentelemetry/sdk-node': true,
  '@opentelemetry/sdk-trace-base': true,
};

/**
 * Every OpenTelemetry package `rampart/tracing` loads, `@opentelemetry/api` aside (a real
 * dependency: the rate limiter uses it). They are optional peer dependencies of rampart,
 * installed only by applications that trace; nothing requires them until tracing starts.
 * `package.json`'s `peerDependencies` must list each of them as optional (a unit test checks).
 */
export const TRACING_PEER_PACKAGES: readonly TracingPeerPackage[] = Object.freeze(Object.keys(PEERS) as TracingPeerPackage[]);

/**
 * Thrown by `startTracing` (and `new RedactingSpanExporter`) when OpenTelemetry packages it
 * needs are not installed. `message` is one line naming them and the `npm install` command.
 */
export class MissingTracingPackagesError extends Error {
  override readonly name = 'MissingTracingPackagesError';
  constructor(
    /** The packages that could not be found. */
    readonly packages: readonly string[],
  ) {
    const which = packages.length === 1 ? 'which is' : 'which are';
    super(
      `rampart/tracing needs ${packages.join(', ')}, ${which} not installed (optional peer dependencies of rampart: only applications that trace install them). Fix: npm install ${installSpecs(packages).join(' ')}`,
    );
  }
}

/**
 * `name@range` as rampart's own package.json states it (`peerDependencies` first), so the
 * command installs versions that fit; the bare name when it cannot be read.
 */
function installSpecs(packages: readonly string[]): string[] {
  let manifest: { name?: unknown; peerDependencies?: Record<string, string>; dependencies?: Record<string, string> } = {};
  try {
    // dist/tracing/ and src/tracing/ are both two levels below the package root.
    manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as typeof manifest;
  } catch {
    // no manifest next to us (bundled?): bare names still install something sensible
  }
  const versions = manifest.name === 'rampart' ? { ...manifest.dependencies, ...manifest.peerDependencies } : {};
  return packages.map((name) => {
    const range = versions[name];
    const spec = range === undefined ? name : `${name}@${range}`;
    // Double quotes: a range's ^, ~, < or space means the same in sh, zsh, cmd and PowerShell then.
    return /^[\w@/.-]+$/.test(spec) ? spec : `"${spec}"`;
  });
}

function notFound(err: unknown, name: string): boolean {
  // Only the package itself: a dependency missing inside it is a broken install, and its own
  // error says more than ours would.
  return (
    err instanceof Error &&
    (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' &&
    err.message.startsWith(`Cannot find module '${name}'`)
  );
}

/**
 * Requires the given packages, now: they are optional, so the modules that use them import
 * their types only and load them through here when tracing starts. Throws
 * {@link MissingTracingPackagesError} naming every one that is not installed.
 */
export function requireTracingPackages<K extends TracingPeerPackage>(names: readonly K[]): Pick<PeerModules, K> {
  const modules: Partial<PeerModules> = {};
  const missing: string[] = [];
  for (const name of names) {
    try {
      // A static import would make `require('rampart/tracing')` fail with Node's bare
      // MODULE_NOT_FOUND in an application that has not installed the optional packages.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      modules[name] = require(name);
    } catch (err) {
      if (!notFound(err, name)) throw err;
      missing.push(name);
    }
  }
  if (missing.length > 0) throw new MissingTracingPackagesError(missing);
  return modules as Pick<PeerModules, K>;
}
