// rampart as an application installs it: the compiled package (dist + package.json) copied into
// node_modules/rampart of a temp directory, next to the repository's other packages, with some of
// them left out. Resolution from the copy then fails exactly as in an application that did not
// install those packages: no mock of `require`, no NODE_PATH.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const NODE_MODULES = join(ROOT, 'node_modules');

/** A compiled copy of `src/`, built once per test file into its own directory (never `dist/`). */
export interface Build {
  readonly dir: string;
  remove(): void;
}

/** Compiles `src/` with `tsconfig.build.json` into a temp directory. */
export function buildPackage(): Build {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-build-'));
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')],
    {
      cwd: ROOT,
      stdio: 'pipe',
    },
  );
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An application directory whose node_modules holds rampart and every package but `without`. */
export interface Install {
  /** The application's directory: write its files here and run node with this as cwd. */
  readonly dir: string;
  remove(): void;
}

function copyTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory()) copyTree(join(from, entry.name), join(to, entry.name));
    else copyFileSync(join(from, entry.name), join(to, entry.name));
  }
}

/**
 * Installs `build` as `node_modules/rampart` (a real copy: a symlink would resolve back to the
 * repository, where every package is found) and links every top-level package of the
 * repository's node_modules except those named in `without`. Those left out can still be
 * dependencies of linked packages (their own resolution starts from the repository), as in a
 * real tree; what matters is that rampart's own `require` cannot find them.
 */
export function installPackage(build: Build, without: readonly string[]): Install {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-app-'));
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  const skip = new Set([...without, 'rampart', '.bin', '.package-lock.json']);
  for (const entry of readdirSync(NODE_MODULES)) {
    if (skip.has(entry)) continue;
    if (entry.startsWith('@')) {
      mkdirSync(join(modules, entry));
      for (const scoped of readdirSync(join(NODE_MODULES, entry))) {
        const name = `${entry}/${scoped}`;
        if (!skip.has(name)) symlinkSync(join(NODE_MODULES, name), join(modules, name));
      }
    } else {
      symlinkSync(join(NODE_MODULES, entry), join(modules, entry));
    }
  }
  copyTree(join(build.dir, 'dist'), join(modules, 'rampart', 'dist'));
  copyFileSync(join(build.dir, 'package.json'), join(modules, 'rampart', 'package.json'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
