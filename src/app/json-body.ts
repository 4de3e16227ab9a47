import express, { type RequestHandler } from 'express';
import { HttpError } from '../index';

// Where readJsonBody leaves a body error for answerBodyError.
const BODY_ERROR = 'bodyError';

// RFC 9110 5.6.2 tchar, by char code (the header is read as latin-1: one char a byte).
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
const isTchar = (code: number) => code < 256 && TCHAR[code] === 1;
const isOws = (code: number) => code === 0x20 || code === 0x09;
// qdtext: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text (%x80-FF).
const isQdtext = (code: number) =>
  code === 0x09 ||
  code === 0x20 ||
  code === 0x21 ||
  (code >= 0x23 && code <= 0x5b) ||
  (code >= 0x5d && code <= 0x7e) ||
  (code >= 0x80 && code <= 0xff);
// After a backslash in a quoted string: HTAB, SP, VCHAR, obs-text.
const isQuotedPairChar = (code: number) => code === 0x09 || (code >= 0x20 && code <= 0x7e) || (code >= 0x80 && code <= 0xff);

/**
 * The `charset` parameter of a Content-Type header, read by RFC 9110's grammar
 * (`*( OWS ";" OWS [ name "=" ( token / quoted-string ) ] )` after the media type): its value
 * (unquoted), `undefined` when there is none, or `null` when the parameters are malformed
 * (a character outside the grammar, such as a control character; a name without a value;
 * an unterminated quoted string; `charset` given twice).
 */
export function contentTypeCharset(header: string): string | undefined | null {
  const n = header.length;
  let i = header.indexOf(';');
  if (i === -1) return undefined;
  let charset: string | undefined;
  while (i < n) {
    // header[i] is ';'
    i++;
    while (i < n && isOws(header.charCodeAt(i))) i++;
    if (i === n || header.charCodeAt(i) === 0x3b) continue; // an empty parameter
    const nameStart = i;
    while (i < n && isTchar(header.charCodeAt(i))) i++;
    if (i === nameStart || i === n || header.charCodeAt(i) !== 0x3d) return null;
    const name = header.slice(nameStart, i).toLowerCase();
    i++;
    let value = '';
    if (i < n && header.charCodeAt(i) === 0x22) {
      i++;
      for (;;) {
        if (i === n) return null;
        const code = header.charCodeAt(i++);
        if (code === 0x22) break;
        if (code === 0x5c) {
          if (i === n || !isQuotedPairChar(header.charCodeAt(i))) return null;
          value += header[i++];
        } else if (isQdtext(code)) {
          value += String.fromCharCode(code);
        } else {
          return null;
        }
      }
    } else {
      const valueStart = i;
      while (i < n && isTchar(header.charCodeAt(i))) i++;
      if (i === valueStart) return null;
      value = header.slice(valueStart, i);
    }
    while (i < n && isOws(header.charCodeAt(i))) i++;
    if (i < n && header.charCodeAt(i) !== 0x3b) return null;
    if (name === 'charset') {
      if (charset !== undefined) return null;
      charset = value;
    }
  }
  return charset;
}

/**
 * Why a JSON body with this Content-Type is refused (415), or `undefined` when it is read:
 * only UTF-8 is (RFC 8259 8.1), named `utf-8` in any case, quoted or not, or not named at all.
 * body-parser would decode other `utf-*` names (`utf-16`, `utf-7`, `utf-8` followed by junk,
 * which iconv-lite reads as `utf8`) and take the first of two charsets.
 */
function charsetProblem(header: string): string | undefined {
  const charset = contentTypeCharset(header);
  if (charset === null) return 'Content-Type parameters are malformed';
  if (charset === undefined || charset.toLowerCase() === 'utf-8') return undefined;
  return 'Request body charset must be utf-8';
}

/**
 * Reads a JSON body of at most `limitBytes` into `req.body` without answering a body error, so
 * that the rate limiter decides first and garbage is limited like any other request. A body
 * that is not `application/json` (415, left unread), not valid JSON (400), over the limit (413:
 * never buffered past it, the rest is read and discarded), in a charset other than UTF-8 or
 * with malformed Content-Type parameters (415, left unread; see {@link contentTypeCharset}), or
 * in an unsupported content encoding (415) is remembered and `req.body` stays `undefined`;
 * {@link answerBodyError}, mounted after the limiter, answers it.
 */
export function readJsonBody(limitBytes: number): RequestHandler {
  const parse = express.json({ limit: limitBytes });
  return (req, res, next) => {
    // Already answered (the shutdown gate refused it while its body was arriving, or its
    // deadline passed): nothing after this may run.
    if (res.headersSent) return;
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    // A body of another type would reach the routes as `undefined`.
    if (hasBody && req.is('application/json') === false) {
      res.locals[BODY_ERROR] = new HttpError('UNSUPPORTED_MEDIA_TYPE', 'Request body must be application/json');
      next();
      return;
    }
    const problem = hasBody ? charsetProblem(req.headers['content-type'] ?? '') : undefined;
    if (problem !== undefined) {
      res.locals[BODY_ERROR] = new HttpError('UNSUPPORTED_MEDIA_TYPE', problem);
      next();
      return;
    }
    parse(req, res, (err?: unknown) => {
      // Answered while the body was read: an aborted read is no error, and the route must not start.
      if (res.headersSent) return;
      if (err !== undefined && err !== null) res.locals[BODY_ERROR] = err;
      next();
    });
  };
}

/** Answers the body error {@link readJsonBody} remembered (400, 413 or 415, through errorHandler). */
export function answerBodyError(): RequestHandler {
  return (_req, res, next) => {
    const err: unknown = res.locals[BODY_ERROR];
    if (err === undefined) next();
    else next(err);
  };
}
