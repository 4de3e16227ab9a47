import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { MissingTracingPackagesError, TRACING_DEFAULTS, TRACING_PEER_PACKAGES } from '../../../src/tracing';

const ROOT = join(__dirname, '..', '..', '..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every `@opentelemetry/<name>` a source file names (imports, `typeof import`, require lists). */
function openTelemetryPackages(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  return new Set([...text.matchAll(/['"](@opentelemetry\/[a-z0-9-]+)['"/]/g)].map((m) => m[1] as string));
}

describe('the optional OpenTelemetry packages (rampart/tracing)', () => {
  it('TRACING_PEER_PACKAGES lists exactly the OpenTelemetry packages src/tracing names, the API aside', () => {
    const named = new Set<string>();
    for (const file of sources(join(ROOT, 'src', 'tracing'))) for (const p of openTelemetryPackages(file)) named.add(p);
    named.delete('@opentelemetry/api');
    assert.deepEqual([...TRACING_PEER_PACKAGES].sort(), [...named].sort());
  });

  it('nothing outside src/tracing names them (src/limit uses @opentelemetry/api only)', () => {
    for (const file of sources(join(ROOT, 'src'))) {
      if (file.startsWith(join(ROOT, 'src', 'tracing'))) continue;
      const named = [...openTelemetryPackages(file)].filter((p) => p !== '@opentelemetry/api');
      assert.deepEqual(named, [], relative(ROOT, file));
    }
  });

  it('package.json: each is an optional peer dependency, and not a dependency', () => {
    for (const name of TRACING_PEER_PACKAGES) {
      assert.ok(manifest.peerDependencies?.[name] !== undefined, `peerDependencies lacks ${name}`);
      assert.equal(manifest.peerDependenciesMeta?.[name]?.optional, true, `peerDependenciesMeta["${name}"].optional is not true`);
      assert.equal(manifest.dependencies?.[name], undefined, `${name} is still in dependencies`);
    }
    assert.ok(manifest.dependencies?.['@opentelemetry/api'] !== undefined, '@opentelemetry/api stays a dependency');
  });

  it('MissingTracingPackagesError: one line naming the packages and the npm command, versions from package.json', () => {
    const err = new MissingTracingPackagesError(['@opentelemetry/sdk-node', '@opentelemetry/resources']);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'MissingTracingPackagesError');
    assert.deepEqual(err.packages, ['@opentelemetry/sdk-node', '@opentelemetry/resources']);
    assert.ok(!err.message.includes('\n'));
    assert.match(
      err.message,
      /^rampart\/tracing needs @opentelemetry\/sdk-node, @opentelemetry\/resources, which are not installed .*\. Fix: npm install \S+ \S+$/,
    );
    const versions = { ...manifest.dependencies, ...manifest.peerDependencies };
    for (const name of err.packages) {
      const range = versions[name];
      assert.ok(range !== undefined, `package.json gives no version of ${name}`);
      assert.ok(err.message.includes(`${name}@${range}`), `the command installs ${name}@${range}`);
    }
    assert.match(new MissingTracingPackagesError(['@opentelemetry/core']).message, /needs @opentelemetry\/core, which is not installed/);
  });

  it('pins the tracing defaults', () => {
    assert.deepEqual(TRACING_DEFAULTS, {
      ignorePaths: ['/health/', '/metrics'],
      exportTimeoutMs: 5_000,
      scheduledDelayMs: 1_000,
      maxQueueSize: 2_048,
      httpEndpoint: 'http://localhost:4318',
      grpcEndpoint: 'http://localhost:4317',
    });
  });
});
