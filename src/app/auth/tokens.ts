import { createHash, randomBytes } from 'node:crypto';

const PREFIX = 'rmp_';

/** A new bearer token: 256 random bits. Only its hash is ever stored. */
export function newToken(): string {
  return PREFIX + randomBytes(32).toString('base64url');
}

/** The stored form of a token: SHA-256 (the token is random, so a slow hash adds nothing). */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** A well-formed token as issued by {@link newToken}. */
export function isWellFormedToken(token: string): boolean {
  return token.length === PREFIX.length + 43 && token.startsWith(PREFIX) && /^[A-Za-z0-9_-]+$/.test(token.slice(PREFIX.length));
}
