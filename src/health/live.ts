import type { RequestHandler } from 'express';

/**
 * `GET /health/live`: 200 `{"status":"healthy","timestamp":"<ISO-8601>"}`. Touches no
 * dependency, so it answers as long as the event loop runs.
 */
export function liveness(): RequestHandler {
  return (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.status(200).json({ status: 'healthy', timestamp: new Date().toISOString() });
  };
}
