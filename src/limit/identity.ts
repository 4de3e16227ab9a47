import type { Request, Response } from 'express';
import { customIdentity, digest, ipIdentity, safeIdentity } from './keys';
import type { KeyFunction, KeyKind } from './types';

/** The identity part of a bucket's key (`i:`, `p:`, `c:` or a custom value) for one request. */
export type IdentityOf = (req: Request, res: Response) => string;

/** The default principal: `res.locals.principal.id`, then `req.user.id`. */
export function defaultPrincipal(req: Request, res: Response): string | undefined {
  const fromLocals = (res.locals['principal'] as { id?: unknown } | undefined)?.id;
  if (typeof fromLocals === 'string' || typeof fromLocals === 'number') return String(fromLocals);
  const fromUser = (req as Request & { user?: { id?: unknown } }).user?.id;
  return typeof fromUser === 'string' || typeof fromUser === 'number' ? String(fromUser) : undefined;
}

/** The default tier: `res.locals.principal.tier`, then `req.user.tier` (a string). */
export function defaultTier(req: Request, res: Response): string | undefined {
  const fromLocals = (res.locals['principal'] as { tier?: unknown } | undefined)?.tier;
  if (typeof fromLocals === 'string') return fromLocals;
  const fromUser = (req as Request & { user?: { tier?: unknown } }).user?.tier;
  return typeof fromUser === 'string' ? fromUser : undefined;
}

// What renders as nothing or as a space: invisible characters, controls, marks, whitespace.
const INVISIBLE = /[\p{M}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{White_Space}]/gu;

/**
 * A name folded so that the forms a person reads as the same name are one: compatibility forms
 * (fullwidth, ligatures, the Kelvin sign) as their plain letters, letter case, combining marks,
 * zero-width and other invisible characters, and whitespace all dropped. More names share a
 * bucket than accounts share a name: a caller can never reach a fresh bucket by respelling one.
 */
export function foldName(value: string): string {
  return value.normalize('NFKC').toLowerCase().normalize('NFKD').replace(INVISIBLE, '').normalize('NFKC');
}

/**
 * The default credential: a JSON body's `username`, folded ({@link foldName}). Nothing a caller
 * adds (a header, an API key it made up) names a bucket: an API key is an identity only once the
 * app has verified it (make it the principal), and unknown keys are limited by address.
 */
export function defaultCredential(req: Request): string | undefined {
  const username = (req.body as { username?: unknown } | undefined)?.username;
  if (typeof username !== 'string') return undefined;
  const folded = foldName(username);
  return folded === '' ? undefined : folded;
}

/** How each kind of key finds a request's identity; every kind falls back to the client IP. */
export interface Identities {
  readonly builtIn: Readonly<Record<KeyKind, IdentityOf>>;
  /** The value each kind is made from, as the app gives it (for allow lists); none for `ip`. */
  readonly raw: Readonly<Record<KeyKind, ((req: Request, res: Response) => string | undefined) | undefined>>;
  custom(key: KeyFunction): IdentityOf;
  /** The identity part of a key for a value as the app gives it (an address, a principal id, a credential, a custom key's value). */
  encode(kind: KeyKind | 'custom', value: string): string;
}

export function identities(
  ipv6Subnet: number,
  principal: KeyFunction = defaultPrincipal,
  credential: KeyFunction = defaultCredential,
): Identities {
  const ipOf = (req: Request) => `i:${ipIdentity(req.ip ?? req.socket.remoteAddress, ipv6Subnet)}`;
  return {
    builtIn: {
      ip: ipOf,
      principal: (req, res) => {
        const p = principal(req, res);
        return p === undefined ? ipOf(req) : `p:${safeIdentity(p)}`;
      },
      credential: (req, res) => {
        const c = credential(req, res);
        return c === undefined ? ipOf(req) : `c:${digest(c)}`;
      },
    },
    raw: { ip: undefined, principal, credential },
    encode(kind, value) {
      if (kind === 'ip') return `i:${ipIdentity(value, ipv6Subnet)}`;
      if (kind === 'principal') return `p:${safeIdentity(value)}`;
      if (kind === 'credential') return `c:${digest(value)}`;
      return customIdentity(value);
    },
    custom(key) {
      return (req, res) => {
        const v = key(req, res);
        return v === undefined ? ipOf(req) : customIdentity(v);
      };
    },
  };
}
