import { createHash } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** Timings of {@link watchPoliciesFile}; together they bound a reload to well under 1 s. */
export const POLICIES_RELOAD_DEFAULTS = Object.freeze({
  /** After a change in the file's directory, wait this long for the rest of the change (an editor's or a ConfigMap's several steps). */
  debounceMs: 100,
  /** Also look at the file this often: where a directory watch misses a change (a symlink to elsewhere, some file systems). */
  pollMs: 500,
});

/** What set off a reload. */
export type ReloadTrigger = 'signal' | 'watch' | 'poll';
/** `unchanged`: the content was the one last tried, nothing was done. */
export type ReloadResult = 'success' | 'error' | 'unchanged';

/** Options of {@link watchPoliciesFile}. */
export interface PoliciesWatchOptions {
  readonly path: string;
  /** The {@link contentFingerprint} of the file the running policies came from, taken before it was read. */
  readonly loaded: string;
  /** Reads the file and applies it; returns the policy names; throws (the running policies untouched) to refuse it. */
  readonly apply: () => readonly string[];
  readonly logger: Logger;
  /** Told of every reload tried (not of `unchanged`). */
  readonly onResult?: (result: 'success' | 'error') => void;
  readonly debounceMs?: number;
  readonly pollMs?: number;
}

/** A running watch of the policies file. */
export interface PoliciesWatcher {
  /** Reads the file now and applies it when its content changed since the last try. */
  reload(trigger: ReloadTrigger): ReloadResult;
  /** Stops the watch, the poll and the SIGHUP handler. */
  close(): void;
}

/** A hash of the file's content, or the reason it cannot be read: two reads of the same content agree. */
export function contentFingerprint(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch (err) {
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

/** Which file the path leads to (through symlinks), its size and modification time: what the poll compares before it reads. */
function statSignature(path: string): string {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
  } catch (err) {
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

/**
 * Reloads the policies file on SIGHUP and when it changes: a watch of its directory (so that
 * a rename over it, or the `..data` symlink swap of a Kubernetes ConfigMap mount, is seen), and
 * a poll of the file as a fallback. A content already tried is not tried again: one change,
 * one reload, one log line. A refused file leaves the running policies in force.
 */
export function watchPoliciesFile(options: PoliciesWatchOptions): PoliciesWatcher {
  const { path, logger } = options;
  const debounceMs = options.debounceMs ?? POLICIES_RELOAD_DEFAULTS.debounceMs;
  const pollMs = options.pollMs ?? POLICIES_RELOAD_DEFAULTS.pollMs;
  let tried = options.loaded;
  // Unknown at first: the first poll reads the file, so a change made since it was loaded is seen.
  let signature: string | undefined;
  let closed = false;

  function reload(trigger: ReloadTrigger): ReloadResult {
    if (closed) return 'unchanged';
    signature = statSignature(path);
    const fingerprint = contentFingerprint(path);
    if (fingerprint === tried) {
      if (trigger === 'signal') logger.info({ path, trigger }, 'policies file unchanged: nothing to reload');
      return 'unchanged';
    }
    tried = fingerprint;
    let names: readonly string[];
    try {
      names = options.apply();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // ConfigError names the variable and the file; a refusal of the limiter says why in its own words.
      const where = message.includes(path) ? message : `RATE_LIMIT_POLICIES_FILE (${path}): ${message}`;
      logger.warn({ trigger }, `policies not reloaded, the running ones stay: ${where}`);
      options.onResult?.('error');
      return 'error';
    }
    logger.info({ path, trigger, policies: names }, 'policies reloaded');
    options.onResult?.('success');
    return 'success';
  }

  let pending: NodeJS.Timeout | undefined;
  const changed = () => {
    // From the first event, not the last: a stream of events cannot put the reload off.
    if (closed || pending !== undefined) return;
    pending = setTimeout(() => {
      pending = undefined;
      reload('watch');
    }, debounceMs);
    pending.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, changed);
    watcher.on('error', (err) => {
      logger.warn({ path, err: { message: err.message } }, 'policies file: the directory watch failed; polling only');
      watcher?.close();
      watcher = undefined;
    });
  } catch (err) {
    logger.warn({ path, err: { message: (err as Error).message } }, 'policies file: the directory cannot be watched; polling only');
  }
  const poll = setInterval(() => {
    if (statSignature(path) !== signature) reload('poll');
  }, pollMs);
  poll.unref();
  const onSignal = () => reload('signal');
  process.on('SIGHUP', onSignal);

  return {
    reload,
    close() {
      closed = true;
      clearTimeout(pending);
      clearInterval(poll);
      watcher?.close();
      process.off('SIGHUP', onSignal);
    },
  };
}
