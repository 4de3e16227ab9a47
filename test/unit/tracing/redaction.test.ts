import assert from 'node:assert/strict';
import { SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import { REDACTED, redactAttributes, scrubSql, scrubString } from '../../../src';
import { RedactingSpanExporter } from '../../../src/tracing';
import { finishedSpan } from '../../support/finished-span';

const span = (overrides: Partial<ReadableSpan>) => finishedSpan(overrides);

function exportThrough(spans: ReadableSpan[]): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  new RedactingSpanExporter(memory).export(spans, () => undefined);
  return memory.getFinishedSpans();
}

describe('redaction policy', () => {
  it('redacts by key: credential headers, DESIGN §7 key patterns and fields', () => {
    const out = redactAttributes({
      'http.request.header.authorization': ['Bearer abc'],
      'http.request.header.proxy-authorization': ['Basic abc'],
      'http.request.header.x-api-key': ['k'],
      'http.request.header.cookie': ['sid=1'],
      'http.request.header.tracestate': ['v=1'],
      'http.request.header.baggage': ['k=v'],
      'http.response.header.set-cookie': ['sid=1'],
      'app.user_token': 'x',
      'app.client_secret': 'x',
      'app.nonce': 'x',
      'app.signature_b64': 'x',
      'db.password': 'x',
      'app.api_key': 'x',
      header_b64u: 'x',
      ciphertext_b64u: 'x',
      ciphertext_hash: 'x',
      'http.route': '/v1/notes/:id',
      'http.response.status_code': 200,
    });
    for (const [k, v] of Object.entries(out)) {
      if (k === 'http.route') assert.equal(v, '/v1/notes/:id');
      else if (k === 'http.response.status_code') assert.equal(v, 200);
      else assert.equal(v, REDACTED, k);
    }
  });

  it('gives captured headers the header rule logs use: other values scrubbed, URLs redacted as URLs', () => {
    const out = redactAttributes({
      'http.request.header.x-request-id': ['r-1'],
      'http.request.header.user-agent': ['probe/1 Bearer abcdef123456'],
      'http.request.header.referer': ['https://u:p@app.example/a?next=/account/x'],
      'http.response.header.content-length': ['2'],
    });
    assert.deepEqual(
      { ...out },
      {
        'http.request.header.x-request-id': ['r-1'],
        'http.request.header.user-agent': [`probe/1 ${REDACTED}`],
        'http.request.header.referer': [`https://${REDACTED}@app.example/a?next=${REDACTED}`],
        'http.response.header.content-length': ['2'],
      },
    );
  });

  it('drops every query value (any case, any name) but keeps the names', () => {
    assert.deepEqual(
      { ...redactAttributes({ 'url.query': 'token=a&Token=b&API_KEY=c&q=d&flag' }) },
      {
        'url.query': `token=${REDACTED}&Token=${REDACTED}&API_KEY=${REDACTED}&q=${REDACTED}&flag`,
      },
    );
    assert.equal(
      redactAttributes({ 'url.full': 'https://u:p@api.example/x?sig=1&v=2#f' })['url.full'],
      `https://${REDACTED}@api.example/x?sig=${REDACTED}&v=${REDACTED}`,
    );
  });

  it('finds credentials inside any string value', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl';
    for (const secret of [
      'Bearer abcdef123456',
      jwt,
      'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
      'rmp_T_mOooywXoMnVV5d3XLWnDsIFryFZ-cFok9WQqESCuM',
      'AKIAIOSFODNN7EXAMPLE',
      'a'.repeat(20) + 'b'.repeat(20) + '0123456789abcdef',
      'password=hunter2',
      'api_key: abc123',
    ]) {
      const scrubbed = scrubString(`failed for ${secret} at step 2`);
      assert.ok(!scrubbed.includes(secret.replace(/^(password=|api_key: )/, '')), `${secret} -> ${scrubbed}`);
      assert.match(scrubbed, /^failed for .*\[REDACTED\] at step 2$/);
    }
    assert.equal(
      scrubString('GET /v1/notes/9b2f3a6e-0c51-4d1e-9d8a-7f6a5b4c3d2e'),
      'GET /v1/notes/9b2f3a6e-0c51-4d1e-9d8a-7f6a5b4c3d2e',
      'UUIDs survive',
    );
    assert.equal(scrubString('connection refused'), 'connection refused');
    // The shortest match any pattern has (a JWT's 13 characters) is still found: the shortcut
    // for short strings skips only what no pattern can match.
    assert.equal(scrubString('eyJabcd.efgh.'), REDACTED);
    assert.equal(scrubString('eyJabcd.efgh'), 'eyJabcd.efgh');
  });

  it('returns attributes with nothing to redact as they are, and a copy (input untouched) when one changes', () => {
    const clean = { 'http.request.method': 'GET', 'url.path': '/v1/status', 'http.response.status_code': 200 };
    assert.equal(redactAttributes(clean), clean);
    const dirty = { 'http.request.method': 'POST', 'url.query': 'token=zzz', 'http.response.status_code': 201 };
    const out = redactAttributes(dirty);
    assert.notEqual(out, dirty);
    assert.deepEqual({ ...out }, { 'http.request.method': 'POST', 'url.query': `token=${REDACTED}`, 'http.response.status_code': 201 });
    assert.equal(dirty['url.query'], 'token=zzz');
  });

  it('removes SQL literals and keeps Redis commands to their name', () => {
    assert.equal(scrubSql("SELECT * FROM t WHERE a = 'x''y' AND b = 42 AND c = $1"), 'SELECT * FROM t WHERE a = ? AND b = ? AND c = $1');
    assert.deepEqual(
      { ...redactAttributes({ 'db.system.name': 'redis', 'db.query.text': 'evalsha abc 1 rl:p:{i:1.2.3.4}' }) },
      {
        'db.system.name': 'redis',
        'db.query.text': 'evalsha',
      },
    );
  });

  it('covers name, status message, exception events, links and resource, on a copy', () => {
    const original = span({
      name: 'GET token=abc123456789xyz',
      status: { code: SpanStatusCode.ERROR, message: 'invalid input syntax for type integer: "secret-literal"' },
      attributes: { 'url.query': 'token=zzz' },
      events: [
        {
          name: 'exception',
          time: [1, 1],
          attributes: {
            'exception.type': 'Error',
            'exception.message': 'db password is pw-canary',
            'exception.stacktrace': 'Error: db password is pw-canary\n    at handler (/app/x.js:1:1)\n    at next (/app/y.js:2:2)',
          },
        },
      ],
      links: [{ context: { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 }, attributes: { 'app.session': 's-canary' } }],
      resource: resourceFromAttributes({ 'service.name': 'svc', 'auth.token': 'res-canary' }),
    });
    const [copy] = exportThrough([original]);
    assert.ok(copy !== undefined);
    const text = JSON.stringify({ ...copy, resource: copy.resource.attributes });
    for (const canary of ['abc123456789xyz', 'secret-literal', 'pw-canary', 's-canary', 'res-canary', 'zzz']) {
      assert.ok(!text.includes(canary), canary);
    }
    assert.equal(copy.status.message, REDACTED);
    assert.equal(copy.events[0]?.attributes?.['exception.type'], 'Error');
    assert.equal(copy.events[0]?.attributes?.['exception.stacktrace'], '    at handler (/app/x.js:1:1)\n    at next (/app/y.js:2:2)');
    assert.equal(copy.resource.attributes['service.name'], 'svc');
    assert.equal(copy.spanContext().spanId, 'b7ad6b7169203331');
    assert.equal(original.attributes['url.query'], 'token=zzz', 'the SDK span is not touched');
  });

  it('never throws and never grows a value, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), fc.string({ maxLength: 40 }), (value, key) => {
        const out = redactAttributes({ [key]: value })[key];
        assert.equal(typeof out, 'string');
        assert.ok((out as string).length <= Math.max(value.length, REDACTED.length) + REDACTED.length * 8);
      }),
    );
  });
});
