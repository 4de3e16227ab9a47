import { Router } from 'express';
import { z } from 'zod';
import { HttpError } from '../../index';
import { hashPassword, verifyPassword } from '../auth/passwords';
import { hashToken, newToken } from '../auth/tokens';
import { Username } from '../auth/username';
import type { Database } from '../db/database';
import { validate, wellFormedText } from '../validate';

const Credentials = z.strictObject({
  username: Username,
  // Any character, control characters included: only the scrypt hash is stored. But a lone
  // surrogate would be hashed as U+FFFD, so that two different passwords would match.
  password: wellFormedText().min(8).max(256),
});

/** Options of {@link createAuthRouter}. */
export interface AuthRouterOptions {
  readonly db: Database;
  /** Lifetime of an issued token. */
  readonly tokenTtlSeconds: number;
}

/** `POST /v1/auth/register` and `POST /v1/auth/login`. */
export function createAuthRouter(options: AuthRouterOptions): Router {
  const { db, tokenTtlSeconds } = options;
  const router = Router();

  router.post('/v1/auth/register', async (req, res) => {
    const { username, password } = validate(Credentials, req.body, 'body');
    const passwordHash = await hashPassword(password);
    const { rows } = await db.writes.query<{ id: string; username: string; created_at: Date }>(
      `INSERT INTO principals (username, password_hash) VALUES ($1, $2)
       ON CONFLICT (username) DO NOTHING RETURNING id, username, created_at`,
      [username, passwordHash],
    );
    const created = rows[0];
    if (created === undefined) throw new HttpError('CONFLICT', 'That username is taken');
    res.status(201).json({ id: created.id, username: created.username, created_at: created.created_at });
  });

  router.post('/v1/auth/login', async (req, res) => {
    const { username, password } = validate(Credentials, req.body, 'body');
    const { rows } = await db.writes.query<{ id: string; password_hash: string }>(
      'SELECT id, password_hash FROM principals WHERE username = $1',
      [username],
    );
    const principal = rows[0];
    const ok = await verifyPassword(password, principal?.password_hash);
    if (!ok || principal === undefined) throw new HttpError('UNAUTHORIZED', 'Wrong username or password');
    const token = newToken();
    await db.writes.query(
      `INSERT INTO sessions (token_hash, principal_id, expires_at)
       VALUES ($1, $2, now() + make_interval(secs => $3))`,
      [hashToken(token), principal.id, tokenTtlSeconds],
    );
    res.status(200).json({ token, token_type: 'Bearer', expires_in: tokenTtlSeconds });
  });

  return router;
}
