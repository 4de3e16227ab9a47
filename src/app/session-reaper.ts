import type { Logger } from 'pino';
import type { Database } from './db/database';

/** A background worker that stops cleanly. */
export interface Worker {
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
}

/** Deletes expired sessions every `intervalMs`, one run at a time. */
export function startSessionReaper(db: Database, logger: Logger, intervalMs: number): Worker {
  let running: Promise<void> | undefined;
  let stopped = false;
  const run = async () => {
    try {
      const { rowCount } = await db.writes.query('DELETE FROM sessions WHERE expires_at <= now()');
      if ((rowCount ?? 0) > 0) logger.info({ deleted: rowCount }, 'expired sessions deleted');
    } catch (err) {
      logger.warn({ err }, 'session reaper run failed');
    }
  };
  const timer = setInterval(() => {
    if (stopped || running !== undefined) return;
    running = run().finally(() => {
      running = undefined;
    });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
