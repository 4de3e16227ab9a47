import { z } from 'zod';
import { HttpError } from '../index';

// A key is named in a detail only when it is short and plain: keys are client input too.
const PLAIN_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Parses a request part with a schema; a mismatch becomes 400 `BAD_REQUEST` naming the field.
 * The offending value is never echoed back, nor an unknown key that is not short and plain.
 */
export function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? what : `${what}.${issue.path.join('.')}`;
  let message = issue?.message ?? 'invalid';
  if (issue?.code === 'unrecognized_keys' && !issue.keys.every((k) => PLAIN_KEY.test(k))) message = 'Unrecognized key';
  throw new HttpError('BAD_REQUEST', `${where}: ${message}`);
}

// Unicode Cc: C0 (U+0000–U+001F), DEL and C1 (U+007F–U+009F). Postgres refuses U+0000 in text
// (22021, which would be a 500), and the others have no place in a stored line of text.
const CONTROL = /\p{Cc}/u;
const CONTROL_BUT_LINE_BREAKS = /[^\P{Cc}\t\n\r]/u;
// A surrogate not in a pair: JSON can carry it (`"\ud800"`) but UTF-8 cannot, so the driver
// would store U+FFFD instead, silently.
const LONE_SURROGATE = /\p{Cs}/u;

/** Text that UTF-8 can carry as it is: no lone surrogate. */
export function wellFormedText(): z.ZodString {
  return z.string().refine((s) => !LONE_SURROGATE.test(s), 'not valid Unicode (a lone surrogate)');
}

/** One line of text: {@link wellFormedText} without any control character (C0, DEL, C1). */
export function lineText(): z.ZodString {
  return wellFormedText().refine((s) => !CONTROL.test(s), 'control characters are not allowed');
}

/** Text of several lines: like {@link lineText}, but tab, line feed and carriage return allowed. */
export function multilineText(): z.ZodString {
  return wellFormedText().refine(
    (s) => !CONTROL_BUT_LINE_BREAKS.test(s),
    'control characters other than tab, line feed and carriage return are not allowed',
  );
}

/**
 * An optional integer query value from `min` to `max`. Absent or empty (`?limit=`) means the
 * route's default; repeated (`?limit=1&limit=2`) is refused.
 */
export function queryInteger(min: number, max: number, what = 'an integer') {
  const value = z.string().regex(/^\d+$/, what).transform(Number).pipe(z.number().int().min(min).max(max));
  return z.preprocess((v) => (v === '' ? undefined : v), value.optional());
}
