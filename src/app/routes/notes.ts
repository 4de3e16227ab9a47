import { Router } from 'express';
import { z } from 'zod';
import { HttpError } from '../../index';
import { principalOf } from '../authenticate';
import type { Database } from '../db/database';
import { lineText, multilineText, queryInteger, validate } from '../validate';

const NoteInput = z.strictObject({
  title: lineText().trim().min(1).max(200),
  body: multilineText().max(10_000),
});
const ListQuery = z.object({
  limit: queryInteger(1, 100),
  offset: queryInteger(0, 1_000_000),
});
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface NoteRow {
  id: string;
  title: string;
  body: string;
  created_at: Date;
  updated_at: Date;
}
const COLUMNS = 'id, title, body, created_at, updated_at';

function noteId(raw: unknown): string {
  // Not a UUID cannot name a note: the same 404 as a note that is not there.
  if (typeof raw !== 'string' || !UUID.test(raw)) throw new HttpError('NOT_FOUND', 'No such note');
  return raw.toLowerCase();
}

/**
 * CRUD on `/v1/notes`: a principal sees and changes only its own notes. Mount `requireAuth`
 * on `/v1/notes` before this router.
 */
export function createNotesRouter(db: Database): Router {
  const router = Router();

  router.get('/v1/notes', async (req, res) => {
    const q = validate(ListQuery, req.query, 'query');
    const { rows } = await db.read.query<NoteRow>(
      `SELECT ${COLUMNS} FROM notes WHERE principal_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3`,
      [principalOf(res).id, q.limit ?? 50, q.offset ?? 0],
    );
    res.json({ notes: rows });
  });

  router.post('/v1/notes', async (req, res) => {
    const input = validate(NoteInput, req.body, 'body');
    const { rows } = await db.writes.query<NoteRow>(
      `INSERT INTO notes (principal_id, title, body) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
      [principalOf(res).id, input.title, input.body],
    );
    res
      .status(201)
      .location(`/v1/notes/${rows[0]?.id ?? ''}`)
      .json(rows[0]);
  });

  router.get('/v1/notes/:id', async (req, res) => {
    const id = noteId(req.params['id']);
    const { rows } = await db.read.query<NoteRow>(`SELECT ${COLUMNS} FROM notes WHERE id = $1 AND principal_id = $2`, [
      id,
      principalOf(res).id,
    ]);
    if (rows[0] === undefined) throw new HttpError('NOT_FOUND', 'No such note');
    res.json(rows[0]);
  });

  router.put('/v1/notes/:id', async (req, res) => {
    const id = noteId(req.params['id']);
    const input = validate(NoteInput, req.body, 'body');
    const { rows } = await db.writes.query<NoteRow>(
      `UPDATE notes SET title = $3, body = $4, updated_at = now()
        WHERE id = $1 AND principal_id = $2 RETURNING ${COLUMNS}`,
      [id, principalOf(res).id, input.title, input.body],
    );
    if (rows[0] === undefined) throw new HttpError('NOT_FOUND', 'No such note');
    res.json(rows[0]);
  });

  router.delete('/v1/notes/:id', async (req, res) => {
    const id = noteId(req.params['id']);
    const { rowCount } = await db.writes.query('DELETE FROM notes WHERE id = $1 AND principal_id = $2', [id, principalOf(res).id]);
    if (rowCount === 0) throw new HttpError('NOT_FOUND', 'No such note');
    res.status(204).end();
  });

  return router;
}
