import type { z } from 'zod';
import { HttpError } from '../errors';

/**
 * Parses a request part with a schema; a mismatch becomes 400 `BAD_REQUEST` naming the field.
 * The offending value is never echoed back.
 */
export function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? what : `${what}.${issue.path.join('.')}`;
  const message = issue?.message ?? 'invalid';
  throw new HttpError('BAD_REQUEST', `${where}: ${message}`);
}
