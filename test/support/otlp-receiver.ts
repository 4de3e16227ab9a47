import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** A minimal OTLP/HTTP receiver on 127.0.0.1 that keeps every request body, gunzipped. */
export interface OtlpReceiver {
  readonly url: string;
  /** Raw bodies of `POST /v1/traces`, decompressed. */
  readonly bodies: readonly Buffer[];
  /** All bodies, concatenated: what a byte-level canary scan reads. */
  all(): Buffer;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const bodies: Buffer[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      if (req.method === 'POST' && req.url === '/v1/traces') bodies.push(body);
      const json = String(req.headers['content-type']).includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    all: () => Buffer.concat(bodies),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
