/** A parsed `REDIS_URL`. */
export type RedisTarget =
  | {
      readonly kind: 'standalone';
      readonly host: string;
      readonly port: number;
      readonly db: number;
      readonly tls: boolean;
      readonly username: string | undefined;
      readonly password: string | undefined;
    }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly { readonly host: string; readonly port: number }[];
      readonly masterName: string;
      readonly db: number;
      /** TLS to the data nodes (`rediss+sentinel://`); the sentinels follow unless told otherwise. */
      readonly tls: boolean;
      readonly username: string | undefined;
      readonly password: string | undefined;
    }
  | {
      readonly kind: 'cluster';
      readonly nodes: readonly { readonly host: string; readonly port: number }[];
      readonly tls: boolean;
      readonly username: string | undefined;
      readonly password: string | undefined;
    };

/** Thrown for a `REDIS_URL` that cannot be used; the message says what is wrong (never the password). */
export class RedisUrlError extends Error {
  override readonly name = 'RedisUrlError';
}

const SCHEMES = {
  'redis:': 'standalone',
  'rediss:': 'standalone',
  'redis+sentinel:': 'sentinel',
  'rediss+sentinel:': 'sentinel',
  'redis+cluster:': 'cluster',
  'rediss+cluster:': 'cluster',
} as const;

function parseHostPort(text: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]\s@,]+))(?::(\d{1,5}))?$/.exec(text);
  if (m === null) throw new RedisUrlError(`"${text}" is not host:port`);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port < 1 || port > 65535) throw new RedisUrlError(`port ${port} is out of range`);
  return { host: (m[1] ?? m[2]) as string, port };
}

/**
 * Parses `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` and their TLS forms
 * `rediss+sentinel://` and `rediss+cluster://` (every connection over TLS). WHATWG
 * `URL` refuses comma-separated hosts, so the authority is split here.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const schemeEnd = url.indexOf('//');
  const scheme = url.slice(0, schemeEnd) as keyof typeof SCHEMES;
  const kind = SCHEMES[scheme];
  if (schemeEnd === -1 || kind === undefined) {
    throw new RedisUrlError(
      'the scheme must be redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://',
    );
  }
  let rest = url.slice(schemeEnd + 2);
  const query = rest.indexOf('?');
  if (query !== -1) rest = rest.slice(0, query);
  const at = rest.lastIndexOf('@');
  const auth = at === -1 ? '' : rest.slice(0, at);
  rest = rest.slice(at + 1);
  const slash = rest.indexOf('/');
  const hostsText = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : decodeURIComponent(rest.slice(slash + 1));
  let username: string | undefined;
  let password: string | undefined;
  if (auth !== '') {
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? auth : auth.slice(0, colon));
    username = user === '' ? undefined : user;
    password = colon === -1 ? undefined : decodeURIComponent(auth.slice(colon + 1));
  }
  if (hostsText === '') throw new RedisUrlError('no host given');
  const defaultPort = kind === 'sentinel' ? 26379 : 6379;
  const hosts = hostsText.split(',').map((h) => parseHostPort(h, defaultPort));

  const tls = scheme.startsWith('rediss');
  if (kind === 'standalone') {
    if (hosts.length !== 1) throw new RedisUrlError(`${scheme}// takes one host; use redis+sentinel:// or redis+cluster:// for several`);
    if (path !== '' && !/^\d{1,2}$/.test(path)) throw new RedisUrlError(`database "${path}" is not a number from 0 to 99`);
    const h = hosts[0] as { host: string; port: number };
    return { kind, host: h.host, port: h.port, db: path === '' ? 0 : Number(path), tls, username, password };
  }
  if (kind === 'sentinel') {
    const [masterName, db, ...more] = path.split('/');
    if (masterName === undefined || masterName === '' || more.length > 0) {
      throw new RedisUrlError('a Sentinel URL ends with /<masterName> (optionally /<db>)');
    }
    if (db !== undefined && !/^\d{1,2}$/.test(db)) throw new RedisUrlError(`database "${db}" is not a number from 0 to 99`);
    return { kind, sentinels: hosts, masterName, db: db === undefined ? 0 : Number(db), tls, username, password };
  }
  if (path !== '') throw new RedisUrlError('a Cluster URL has no path (Cluster has only database 0)');
  return { kind, nodes: hosts, tls, username, password };
}
