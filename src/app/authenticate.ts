import type { RequestHandler, Response } from 'express';
import { HttpError } from '../index';
import { hashToken, isWellFormedToken } from './auth/tokens';
import type { Database } from './db/database';

/** Who made the request, once {@link requireAuth} has let it through. */
export interface Principal {
  readonly id: string;
  readonly username: string;
}

/** The authenticated principal of a request (set by {@link requireAuth}). */
export function principalOf(res: Response): Principal {
  const p = res.locals['principal'] as Principal | undefined;
  if (p === undefined) throw new Error('principalOf called on a route without requireAuth');
  return p;
}

const unauthorized = (detail: string) => new HttpError('UNAUTHORIZED', detail, { headers: { 'WWW-Authenticate': 'Bearer' } });

/** Requires `Authorization: Bearer <token>` naming a live session. */
export function requireAuth(db: Database): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined) throw unauthorized('Missing Authorization: Bearer <token>');
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const token = match?.[1];
    if (token === undefined || !isWellFormedToken(token)) throw unauthorized('Malformed bearer token');
    const { rows } = await db.writes.query<Principal>(
      `SELECT p.id, p.username FROM sessions s JOIN principals p ON p.id = s.principal_id
        WHERE s.token_hash = $1 AND s.expires_at > now()`,
      [hashToken(token)],
    );
    const principal = rows[0];
    if (principal === undefined) throw unauthorized('Invalid or expired token');
    res.locals['principal'] = principal;
    next();
  };
}
