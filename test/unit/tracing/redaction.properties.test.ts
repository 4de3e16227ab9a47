// Redaction as properties: canaries generated in every position a client controls (URL,
// headers, trace state, baggage) never reach an exported span nor a log line. A failure prints
// fast-check's seed and path and the smallest input found; replay it with
// `FC_SEED=<seed> FC_PATH=<path> npx mocha test/unit/tracing/redaction.properties.test.ts`.
import assert from 'node:assert/strict';
import { createTraceState, type Attributes } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import { REDACTED, redactAttributes, redactHeader, redactHeaders, redactPath, redactQueryString, redactUrl } from '../../../src';
import { serializeRequest, serializeResponse } from '../../../src/app/logger';
import { RedactingSpanExporter, redactSpan } from '../../../src/tracing';
import { finishedSpan } from '../../support/finished-span';
import {
  anyCanary,
  credentialHeaders,
  leaked,
  pathSegment,
  query,
  runs,
  shaped,
  spanText,
  urlWithCanaries,
  type Canary,
  type GeneratedUrl,
} from '../../support/canaries';

/** The attributes a server span (src/tracing/server-spans.ts) and an HTTP client span make of a URL. */
function urlAttributes(url: GeneratedUrl): Attributes {
  const q = url.full.indexOf('?');
  return {
    'url.full': url.full,
    'http.url': url.full,
    'http.target': url.target,
    'url.path': q === -1 ? url.full : url.full.slice(0, q),
    ...(q === -1 ? {} : { 'url.query': url.full.slice(q + 1) }),
  };
}

const span = (overrides: Partial<ReadableSpan>) => finishedSpan(overrides, 'GET');

function exported(spans: ReadableSpan[], keepTraceState = false): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  new RedactingSpanExporter(memory, { keepTraceState }).export(spans, () => undefined);
  return memory.getFinishedSpans();
}

const noLeak = (text: string, canaries: readonly Canary[]) => {
  const found = leaked(text, canaries);
  assert.equal(found, undefined, `${found} in ${text}`);
};

describe('redaction properties: a canary in any position never leaves', () => {
  it('URL attributes (url.full, http.url, http.target, url.path, url.query): userinfo, segments, names, bare and repeated names, values, fragment', () => {
    fc.assert(
      fc.property(urlWithCanaries(), (url) => {
        noLeak(JSON.stringify(redactAttributes(urlAttributes(url))), url.canaries);
      }),
      runs(500),
    );
  });

  it('redactUrl, redactPath and redactQueryString on their own', () => {
    fc.assert(
      fc.property(urlWithCanaries(), pathSegment(), query(), (url, segment, q) => {
        noLeak(redactUrl(url.full), url.canaries);
        noLeak(redactUrl(url.target), url.canaries);
        noLeak(redactPath(`/a/${segment.text}/b`), segment.canaries);
        noLeak(redactQueryString(q.text), q.canaries);
      }),
      runs(500),
    );
  });

  it('credential headers, as span attributes and through redactHeader(s)', () => {
    fc.assert(
      fc.property(credentialHeaders, ({ headers, canaries }) => {
        const attributes: Attributes = {};
        for (const [name, value] of Object.entries(headers)) attributes[`http.request.header.${name.toLowerCase()}`] = [value];
        noLeak(JSON.stringify(redactAttributes(attributes)), canaries);
        noLeak(JSON.stringify(redactHeaders(headers)), canaries);
        for (const [name, value] of Object.entries(headers)) assert.equal(redactHeader(name, value), REDACTED, name);
      }),
      runs(300),
    );
  });

  it('whole spans through the exporter: name, attributes, events, links, and the trace state of every span context', () => {
    fc.assert(
      fc.property(urlWithCanaries(), anyCanary, anyCanary, fc.boolean(), (url, inState, inLink, keep) => {
        const state = createTraceState(`rojo=00f067aa0ba902b7,vendor=${encodeURIComponent(inState.text)}`);
        const linkState = createTraceState(`congo=t61rcWkgMzE,v=${encodeURIComponent(inLink.text)}`);
        const ctx = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, traceState: state };
        const original = span({
          name: `GET ${url.target}`,
          spanContext: () => ctx,
          parentSpanContext: { traceId: ctx.traceId, spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true, traceState: state },
          attributes: urlAttributes(url),
          events: [{ name: 'redirect', time: [1, 1], attributes: { 'url.full': url.full } }],
          links: [
            {
              context: { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1, traceState: linkState },
              attributes: { 'url.full': url.full },
            },
          ],
        });
        // A trusted peer's trace state is kept but for entries with a credential's shape: a
        // plain value there is the peer's own business.
        const canaries = [...url.canaries, ...[inState, inLink].filter((c) => !keep || c.shape !== 'plain')];
        const [copy] = exported([original], keep);
        assert.ok(copy !== undefined);
        noLeak(spanText(copy), canaries);
        noLeak(spanText(redactSpan(original, { keepTraceState: keep })), canaries);
        assert.ok(copy.name.startsWith('GET '));
      }),
      runs(300),
    );
  });

  it('the request log: URL, route parameters and headers, request and response alike', () => {
    fc.assert(
      fc.property(urlWithCanaries(), credentialHeaders, shaped, (url, { headers, canaries }, param) => {
        const all = [...url.canaries, ...canaries, param];
        const line = JSON.stringify({
          req: serializeRequest({
            id: 'r',
            method: 'GET',
            url: url.target,
            params: { id: param.text },
            headers: { host: 'api.example', ...headers },
          }),
          res: serializeResponse({ statusCode: 302, headers: { location: url.full, 'set-cookie': [`session=${param.text}`] } }),
        });
        noLeak(line, all);
      }),
      runs(300),
    );
  });

  it('keeps what is not secret: plain names, plain segments, other headers, and the same object when nothing changes', () => {
    assert.equal(redactQueryString('a&b&flag'), 'a&b&flag');
    assert.equal(redactQueryString('q=1;q=2&x'), `q=${REDACTED};q=${REDACTED}&x`);
    assert.equal(redactPath('/v1/notes/9b2f3a6e-0c51-4d1e-9d8a-7f6a5b4c3d2e'), '/v1/notes/9b2f3a6e-0c51-4d1e-9d8a-7f6a5b4c3d2e');
    assert.equal(redactPath('/docs/configure-rate-limiting-with-redis/2024'), '/docs/configure-rate-limiting-with-redis/2024');
    assert.equal(redactPath('/v1/#/x'), '/v1/', 'a fragment is dropped');
    assert.equal(redactPath('/bad%E0%A4%A/%zz/%'), '/bad%E0%A4%A/%zz/%', 'bad percent-encoding never throws');
    assert.equal(redactUrl('https://api.example/v1/status'), 'https://api.example/v1/status');
    assert.equal(
      redactHeader('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'),
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    );
    assert.equal(redactHeader('User-Agent', 'curl/8.5.0'), 'curl/8.5.0');
    const clean: Attributes = { 'url.path': '/v1/status', 'url.query': 'flag', 'http.request.header.accept': ['*/*'] };
    assert.equal(redactAttributes(clean), clean);
  });
});
