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
  /** How many spans were received, protobuf and JSON bodies alike. */
  spans(): number;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const bodies: Buffer[] = [];
  let spans = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const json = String(req.headers['content-type']).includes('json');
      if (req.method === 'POST' && req.url === '/v1/traces') {
        bodies.push(body);
        spans += json ? countJsonSpans(body) : countProtobufSpans(body);
      }
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    all: () => Buffer.concat(bodies),
    spans: () => spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function countJsonSpans(body: Buffer): number {
  const request = JSON.parse(body.toString('utf8')) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
  let n = 0;
  for (const rs of request.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) n += ss.spans?.length ?? 0;
  return n;
}

// The length-delimited fields `field` of a protobuf message, as [start, end) ranges of `buf`.
function* fields(buf: Buffer, start: number, end: number, field: number): Generator<[number, number]> {
  let i = start;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = buf[i++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (i < end) {
    const key = varint();
    const type = key & 7;
    if (type === 0) varint();
    else if (type === 1) i += 8;
    else if (type === 5) i += 4;
    else if (type === 2) {
      const length = varint();
      if (key >>> 3 === field) yield [i, i + length];
      i += length;
    } else throw new Error(`protobuf wire type ${type} in an OTLP body`);
  }
}

// ExportTraceServiceRequest.resource_spans (1) → ResourceSpans.scope_spans (2) → ScopeSpans.spans (2).
function countProtobufSpans(body: Buffer): number {
  let n = 0;
  for (const [rs, rsEnd] of fields(body, 0, body.length, 1))
    for (const [ss, ssEnd] of fields(body, rs, rsEnd, 2)) for (const _span of fields(body, ss, ssEnd, 2)) n++;
  return n;
}
