import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { RedisClientOptions } from '../redis/redis-client';
import type { RedisAccess } from './config';
import { ConfigError } from './variables';

/** Reads one PEM file a variable names; a file that cannot be read, or holds no PEM block, is refused naming the variable. */
function pem(variable: string, file: string, what: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(variable, `${variable}=${file} cannot be read (${code}). Fix: point ${variable} at ${what}.`);
  }
  if (!content.includes('-----BEGIN ')) {
    throw new ConfigError(
      variable,
      `${variable}=${file} holds no PEM block (-----BEGIN …). Fix: point ${variable} at ${what}, in PEM form.`,
    );
  }
  return content;
}

/**
 * The TLS and Sentinel options of `createRedisClient` from the configuration: the files of
 * REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE read now (a file that cannot be
 * read is a {@link ConfigError} naming its variable), REDIS_TLS_SERVERNAME, and, with
 * REDIS_TLS_SKIP_HOSTNAME_CHECK=true, a certificate accepted whatever host it names (still
 * verified against the CA; the caller logs that it is on).
 */
export function redisClientAccess(
  access: RedisAccess,
): Pick<RedisClientOptions, 'tls' | 'sentinelTls' | 'sentinelUsername' | 'sentinelPassword'> {
  const tls: ConnectionOptions = {
    ...(access.caFile === undefined
      ? {}
      : { ca: pem('REDIS_TLS_CA_FILE', access.caFile, "the CA certificate(s) that signed the Redis servers' certificates") }),
    ...(access.certFile === undefined ? {} : { cert: pem('REDIS_TLS_CERT_FILE', access.certFile, 'the client certificate') }),
    ...(access.keyFile === undefined ? {} : { key: pem('REDIS_TLS_KEY_FILE', access.keyFile, "the client certificate's private key") }),
    ...(access.servername === undefined ? {} : { servername: access.servername }),
    ...(access.skipHostnameCheck ? { checkServerIdentity: () => undefined } : {}),
  };
  return {
    tls,
    ...(access.sentinelTls === undefined ? {} : { sentinelTls: access.sentinelTls }),
    ...(access.sentinelUsername === undefined ? {} : { sentinelUsername: access.sentinelUsername }),
    ...(access.sentinelPassword === undefined ? {} : { sentinelPassword: access.sentinelPassword }),
  };
}

/** TLS errors that mean the configuration is wrong, not that Redis is down: the variable that fixes each. */
const CERTIFICATE_ERRORS: Readonly<Record<string, string>> = {
  SELF_SIGNED_CERT_IN_CHAIN: 'REDIS_TLS_CA_FILE',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'REDIS_TLS_CA_FILE',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'REDIS_TLS_CA_FILE',
  UNABLE_TO_GET_ISSUER_CERT: 'REDIS_TLS_CA_FILE',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'REDIS_TLS_CA_FILE',
  CERT_SIGNATURE_FAILURE: 'REDIS_TLS_CA_FILE',
  CERT_HAS_EXPIRED: 'REDIS_TLS_CA_FILE',
  ERR_TLS_CERT_ALTNAME_INVALID: 'REDIS_TLS_SERVERNAME',
};

/**
 * The configuration error a connection error means, if it is a certificate the client refused
 * (undefined for anything else: a server that is down is an outage, not a misconfiguration).
 */
export function certificateRefusal(err: unknown, where: string): ConfigError | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  const variable = CERTIFICATE_ERRORS[code];
  if (variable === undefined) return undefined;
  const said = (err as Error).message.replace(/\s*[\r\n]+\s*/g, ' ');
  const fix =
    variable === 'REDIS_TLS_SERVERNAME'
      ? "set REDIS_TLS_SERVERNAME to the name the server's certificate gives (or, knowingly, REDIS_TLS_SKIP_HOSTNAME_CHECK=true)"
      : "set REDIS_TLS_CA_FILE to the CA certificate that signed the server's certificate";
  return new ConfigError(variable, `the Redis server's certificate was refused at ${where} (${code}: ${said}). Fix: ${fix}.`);
}
