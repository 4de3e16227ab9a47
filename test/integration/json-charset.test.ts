// The charset of a JSON body, against the sample API's body read (readJsonBody) on its production
// server wiring, with generated Content-Type headers (fast-check; a failure prints the seed and
// the smallest header that broke the promise; FC_SEED=<n> replays one). The promise: UTF-8
// (`utf-8` in any case, quoted or not) or no charset is read; any other charset, a malformed
// parameter list or a charset given twice is 415 UNSUPPORTED_MEDIA_TYPE in our JSON (a byte
// Node's own parser refuses is its 400, in our JSON too); never a 5xx.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { createHealth, loadConfig } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createHttpServer } from '../../src/app/http-server';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting, type RateLimiting } from '../../src/app/rate-limiting';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { raw, type RawResponse } from '../support/raw-http';
import { TEST_DEADLINE_ENV } from '../support/deadline';

const seed = process.env['FC_SEED'] === undefined ? {} : { seed: Number(process.env['FC_SEED']) };

// Fails validation (no password check, no database write): the answer shows the body was read.
const BODY = Buffer.from('{"username":"ü","password":"short"}', 'utf8');
const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const chr = (min: number, max: number) => fc.integer({ min, max }).map((c) => String.fromCharCode(c));

/** A control character Node's parser refuses in a header value (all but HTAB; CR and LF left out). */
const refusedByNode = (s: string) => /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(s); // eslint-disable-line no-control-regex
/** `utf-8` as RFC 9110 lets a parameter value spell it: any case, a token or a quoted string (with quoted-pairs), trailing OWS. */
const isUtf8Spelling = (value: string) => /^(?:utf-8|"(?:\\?u)(?:\\?t)(?:\\?f)(?:\\?-)(?:\\?8)")[ \t]*$/i.test(value);

type Outcome = 'read' | 'refused' | 'node-400';

describe('JSON body charset (sample API body read, generated Content-Type headers)', function () {
  this.timeout(120_000);
  let schema: TestSchema;
  let db: Database;
  const limitings: RateLimiting[] = [];
  const servers: Server[] = [];
  let port = 0;
  let baseline: RawResponse;

  async function serve(rps: string, burst: string): Promise<number> {
    const config = loadConfig({
      ...TEST_DEADLINE_ENV,
      RATE_LIMIT_BACKEND: 'memory',
      RATE_LIMIT_DEFAULT_RPS: rps,
      RATE_LIMIT_DEFAULT_BURST: burst,
      LOAD_SHED_ENABLED: 'false',
    });
    const logger = createLogger('silent');
    const limiting = createRateLimiting(config, logger);
    limitings.push(limiting);
    const app = createApp({
      config,
      db,
      logger,
      health: createHealth({ checks: [] }),
      version: 'test',
      ...(limiting.limiter === undefined ? {} : { limiter: limiting.limiter }),
    });
    const server = createHttpServer(app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    return (server.address() as AddressInfo).port;
  }

  /** POSTs the body with this Content-Type, written byte for byte (latin-1: one character a byte). */
  function post(contentType: string, to = port): Promise<RawResponse> {
    const head = `POST /v1/auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`;
    return raw(to, Buffer.concat([Buffer.from(head, 'latin1'), BODY]));
  }

  function assertOutcome(contentType: string, res: RawResponse, expected: Outcome): void {
    const shown = `${JSON.stringify(contentType)}: ${res.status} ${res.body.slice(0, 200)}`;
    assert.ok(res.status > 0 && res.status < 500, shown);
    if (expected === 'read') {
      assert.equal(res.status, baseline.status, shown);
      assert.equal(res.body, baseline.body, shown);
      return;
    }
    assert.match(res.headers['content-type'] ?? '', /^application\/json/, shown);
    const parsed = JSON.parse(res.body) as { error?: string; detail?: unknown };
    assert.equal(typeof parsed.detail, 'string', shown);
    if (expected === 'refused') {
      assert.equal(res.status, 415, shown);
      assert.equal(parsed.error, 'UNSUPPORTED_MEDIA_TYPE', shown);
    } else {
      assert.equal(res.status, 400, shown);
      assert.equal(parsed.error, 'BAD_REQUEST', shown);
    }
  }

  before(async () => {
    schema = await createTestSchema('charset');
    db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 2 });
    await migrate(db.write, db.schema);
    port = await serve('100000', '100000');
    baseline = await post('application/json');
    // The body was read and validated: the route's own answer, naming a field.
    assert.equal(baseline.status, 400, baseline.body);
    assert.match(baseline.body, /"error":"BAD_REQUEST"/);
    assert.doesNotMatch(baseline.body, /not valid JSON/);
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    for (const l of limitings) await l.close();
    await db?.close();
    await schema?.drop();
  });

  it('the cases reported: an unknown charset, latin1, utf-16 and the like are 415; utf-8 in any spelling is read', async () => {
    const cases: [string, Outcome][] = [
      // `utf-8é` as a client sends it (UTF-8 bytes), and as one latin-1 byte.
      [`application/json; charset=${Buffer.from('utf-8é', 'utf8').toString('latin1')}`, 'refused'],
      ['application/json; charset=utf-8\u00e9', 'refused'],
      ['application/json; charset="utf-8\u00e9"', 'refused'],
      ['application/json; charset=latin1', 'refused'],
      ['application/json; charset=iso-8859-1', 'refused'],
      ['application/json; charset=utf-16', 'refused'],
      ['application/json; charset=utf-16le', 'refused'],
      ['application/json; charset=utf-32', 'refused'],
      ['application/json; charset=utf-7', 'refused'],
      // body-parser does not take the alias either.
      ['application/json; charset=utf8', 'refused'],
      ['application/json; charset=utf-8; charset=latin1', 'refused'],
      ['application/json; charset=utf-8; CHARSET=utf-8', 'refused'],
      ['application/json; charset=ut\tf-8', 'refused'],
      ['application/json; charset=utf-8\u0001', 'node-400'],
      ['application/json; charset', 'refused'],
      ['application/json; charset=', 'refused'],
      ['application/json; charset = utf-8', 'refused'],
      ['application/json; charset="utf-8', 'refused'],
      ['application/json; charset="utf-8"x', 'refused'],
      ['application/json; =utf-8', 'refused'],
      ['application/json; charset=utf-8', 'read'],
      ['application/json; charset=UTF-8', 'read'],
      ['application/json; Charset="Utf-8"', 'read'],
      ['application/json; charset="u\\tf-8"', 'read'],
      ['application/json;charset=utf-8', 'read'],
      ['application/json ;\tcharset=utf-8 ; ;', 'read'],
      ['application/json; foo=bar; charset=utf-8', 'read'],
      ['application/json; foo="a;charset=latin1"; charset=utf-8', 'read'],
      ['application/json;', 'read'],
    ];
    for (const [contentType, expected] of cases) assertOutcome(contentType, await post(contentType), expected);
  });

  it('a generated charset value: utf-8 spellings are read, anything else is 415 in our JSON, never a 5xx', async () => {
    const utf8 = fc
      .tuple(fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }), fc.constantFrom('token', 'quoted', 'escaped'))
      .map(([upper, form]) => {
        const word = [...'utf-8'].map((c, i) => (upper[i] === true ? c.toUpperCase() : c)).join('');
        if (form === 'token') return word;
        if (form === 'quoted') return `"${word}"`;
        return `"${[...word].map((c) => `\\${c}`).join('')}"`;
      });
    const known = fc.constantFrom(
      'latin1',
      'iso-8859-1',
      'us-ascii',
      'windows-1252',
      'utf-16',
      'utf-16le',
      'UTF-16BE',
      'utf-32',
      'utf-7',
      'utf8',
      'UTF8',
      'cesu-8',
      'unicode-1-1-utf-8',
      'utf-8-bom',
      'x-utf-8',
      'utf-88',
      'utf-',
      '"utf-8 "',
      '" utf-8"',
      '"utf8"',
      '"latin1"',
    );
    // Any byte a header may carry but CR, LF and ';' (which would start another parameter).
    const byte = fc.oneof(
      { arbitrary: fc.constantFrom(...TCHARS, 'u', 't', 'f', '-', '8'), weight: 8 },
      { arbitrary: fc.constantFrom(' ', '\t', '"', '\\', '=', ',', '/', '(', '@'), weight: 3 },
      { arbitrary: chr(0x80, 0xff), weight: 2 },
      { arbitrary: fc.oneof(chr(0x00, 0x08), chr(0x0b, 0x0c), chr(0x0e, 0x1f), fc.constant('\x7f')), weight: 1 },
    );
    const anything = fc.string({ unit: byte, minLength: 0, maxLength: 12 });
    const counts = { read: 0, refused: 0, 'node-400': 0 };
    await fc.assert(
      fc.asyncProperty(fc.oneof(utf8, known, anything), async (value) => {
        const contentType = `application/json; charset=${value}`;
        const expected: Outcome = refusedByNode(value) ? 'node-400' : isUtf8Spelling(value) ? 'read' : 'refused';
        counts[expected]++;
        assertOutcome(contentType, await post(contentType), expected);
      }),
      { numRuns: 400, ...seed },
    );
    // The generator must reach each outcome, or it proves nothing.
    assert.ok(counts.read > 40 && counts.refused > 100 && counts['node-400'] > 5, JSON.stringify(counts));
  });

  it('generated parameter lists: a charset twice or a malformed parameter is 415 (or Node 400), utf-8 or none is read', async () => {
    const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 6 });
    const qdtext = fc.oneof(fc.constantFrom('\t', ' ', '!'), chr(0x23, 0x5b), chr(0x5d, 0x7e), chr(0x80, 0xff));
    const quotedPair = fc.oneof(fc.constantFrom('\t', ' '), chr(0x21, 0x7e), chr(0x80, 0xff)).map((c) => `\\${c}`);
    const quoted = fc.array(fc.oneof(qdtext, quotedPair), { maxLength: 6 }).map((parts) => `"${parts.join('')}"`);
    const ows = fc.constantFrom('', '', ' ', '\t', ' \t ');
    const charsetName = fc.constantFrom('charset', 'Charset', 'CHARSET');
    const utf8Value = fc.constantFrom('utf-8', 'UTF-8', '"utf-8"', '"Utf-8"', '"\\u\\t\\f\\-\\8"');
    const otherValue = fc.constantFrom('latin1', 'utf-16', 'utf8', '"utf-16"', 'utf-7', 'ascii');
    interface Param {
      readonly text: string;
      readonly charset?: 'utf-8' | 'other';
    }
    const param: fc.Arbitrary<Param> = fc.oneof(
      { arbitrary: fc.constant({ text: '' }), weight: 1 },
      {
        arbitrary: fc
          .tuple(
            token.filter((t) => t.toLowerCase() !== 'charset'),
            fc.oneof(token, quoted),
          )
          .map(([name, value]) => ({ text: `${name}=${value}` })),
        weight: 3,
      },
      { arbitrary: fc.tuple(charsetName, utf8Value).map(([n, v]): Param => ({ text: `${n}=${v}`, charset: 'utf-8' })), weight: 3 },
      { arbitrary: fc.tuple(charsetName, otherValue).map(([n, v]): Param => ({ text: `${n}=${v}`, charset: 'other' })), weight: 1 },
    );
    // One broken parameter: [text, refused by Node's parser]. Control characters and obs-text sit
    // inside a token, never at the header's ends (which Node trims).
    const broken = fc.oneof(
      token.map((t) => [t, false] as const),
      token.map((t) => [`${t}=`, false] as const),
      token.map((t) => [`=${t}`, false] as const),
      fc.tuple(token, token).map(([n, v]) => [`${n} =${v}`, false] as const),
      fc.tuple(token, token).map(([n, v]) => [`${n}= ${v}`, false] as const),
      fc.tuple(token, token, token).map(([n, v, w]) => [`${n}="${v}"${w}`, false] as const),
      fc.tuple(token, token, chr(0x80, 0xff)).map(([n, v, c]) => [`${n}=${v}${c}x`, false] as const),
      fc.tuple(token, token).map(([n, v]) => [`${n}\tx=${v}`, false] as const),
      // Weighted so that some 30 of the 400 runs reach Node's refusal (the count asserted below).
      {
        arbitrary: fc
          .tuple(token, token, fc.oneof(chr(0x00, 0x08), chr(0x0b, 0x0c), chr(0x0e, 0x1f), fc.constant('\x7f')))
          .map(([n, v, c]) => [`${n}=${v}${c}x`, true] as const),
        weight: 4,
      },
    );
    // An unterminated quoted string, last (a later quote could otherwise close it).
    const unterminated = fc.tuple(token, token).map(([n, v]) => `${n}="${v}`);
    const counts = { read: 0, refused: 0, 'node-400': 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(param, { maxLength: 4 }),
        fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.tuple(broken, fc.nat()), weight: 1 }),
        fc.oneof({ arbitrary: fc.constant(undefined), weight: 7 }, { arbitrary: unterminated, weight: 1 }),
        fc.array(ows, { minLength: 12, maxLength: 12 }),
        async (params, brokenAt, openQuote, spaces) => {
          const texts = params.map((p) => p.text);
          if (brokenAt !== undefined) texts.splice(brokenAt[1] % (texts.length + 1), 0, brokenAt[0][0]);
          if (openQuote !== undefined) texts.push(openQuote);
          let contentType = 'application/json';
          texts.forEach((t, i) => (contentType += `${spaces[i * 2] ?? ''};${spaces[i * 2 + 1] ?? ''}${t}`));
          const charsets = params.filter((p) => p.charset !== undefined);
          let expected: Outcome;
          if (brokenAt?.[0][1] === true) expected = 'node-400';
          else if (brokenAt !== undefined || openQuote !== undefined || charsets.length > 1) expected = 'refused';
          else expected = charsets[0]?.charset === 'other' ? 'refused' : 'read';
          counts[expected]++;
          assertOutcome(contentType, await post(contentType), expected);
        },
      ),
      { numRuns: 400, ...seed },
    );
    assert.ok(counts.read > 40 && counts.refused > 100 && counts['node-400'] > 5, JSON.stringify(counts));
  });

  it('a refused charset is answered after the rate limiter: a client over its limit gets 429, not 415', async () => {
    const limited = await serve('0.001', '1');
    const bad = 'application/json; charset=latin1';
    assertOutcome(bad, await post(bad, limited), 'refused');
    const second = await post(bad, limited);
    assert.equal(second.status, 429, second.body);
    assert.match(second.body, /"error":"RATE_LIMITED"/);
  });
});
