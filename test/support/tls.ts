// Certificates made at test time with openssl: a private CA, a server certificate for
// 127.0.0.1 and localhost signed by it, a client certificate signed by it (mutual TLS), and a
// second CA that signed nothing here (a wrong CA). Valid for two days; removed by `remove()`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly dir: string;
  /** Paths of the PEM files. */
  readonly files: {
    readonly ca: string;
    readonly serverCert: string;
    readonly serverKey: string;
    readonly clientCert: string;
    readonly clientKey: string;
    readonly otherCa: string;
  };
  readonly ca: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  readonly otherCa: Buffer;
  remove(): void;
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-pki-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) =>
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-subj',
      `/CN=rampart ${name}`,
      '-days',
      '2',
    );
  const signed = (name: string, subject: string, ext: string) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('ca');
  ca('other-ca');
  signed('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  signed('client', '/CN=rampart-client', 'extendedKeyUsage=clientAuth\n');
  const files = {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    otherCa: join(dir, 'other-ca.crt'),
  };
  return {
    dir,
    files,
    ca: readFileSync(files.ca),
    clientCert: readFileSync(files.clientCert),
    clientKey: readFileSync(files.clientKey),
    otherCa: readFileSync(files.otherCa),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * redis-server arguments for a TLS port beside the plain one (the plain port stays for the
 * test's own administration): the server certificate, the CA clients' certificates must chain
 * to, and whether clients must present one (`yes`: mutual TLS). `tls-replication` makes
 * replicas and sentinels speak TLS to it, `tls-cluster` the cluster bus (and then CLUSTER SLOTS
 * hands a TLS client the TLS ports, a plain one the plain ports).
 */
export function tlsServerArgs(pki: TestPki, tlsPort: number, o: { authClients: 'yes' | 'no'; cluster?: boolean }): string[] {
  return [
    '--tls-port',
    String(tlsPort),
    '--tls-cert-file',
    pki.files.serverCert,
    '--tls-key-file',
    pki.files.serverKey,
    '--tls-ca-cert-file',
    pki.files.ca,
    '--tls-auth-clients',
    o.authClients,
    '--tls-replication',
    'yes',
    ...(o.cluster === true ? ['--tls-cluster', 'yes'] : []),
  ];
}
