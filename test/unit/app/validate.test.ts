import assert from 'node:assert/strict';
import { z } from 'zod';
import { HttpError } from '../../../src';
import { lineText, multilineText, queryInteger, validate, wellFormedText } from '../../../src/app/validate';

const ok = (schema: z.ZodType, value: unknown) => schema.safeParse(value).success;
const char = (c: number) => `a${String.fromCharCode(c)}b`;

describe('validation of text and query values', () => {
  it('lineText refuses every Unicode control character (C0, DEL, C1) and lone surrogates', () => {
    for (let c = 0; c <= 0x1f; c++) assert.equal(ok(lineText(), char(c)), false, `U+${c.toString(16)}`);
    for (let c = 0x7f; c <= 0x9f; c++) assert.equal(ok(lineText(), char(c)), false, `U+${c.toString(16)}`);
    for (const s of ['a\ud800', '\udc00b', '\udbff\udbff']) assert.equal(ok(lineText(), s), false);
    for (const s of ['plain', 'ü 😀 \u202e \u2028 \u00a0', ' ', '']) assert.equal(ok(lineText(), s), true, s);
  });

  it('multilineText also allows tab, line feed and carriage return, nothing else of C0', () => {
    for (let c = 0; c <= 0x1f; c++)
      assert.equal(ok(multilineText(), char(c)), c === 0x09 || c === 0x0a || c === 0x0d, `U+${c.toString(16)}`);
    assert.equal(ok(multilineText(), char(0x7f)), false);
    assert.equal(ok(multilineText(), char(0x85)), false);
    assert.equal(ok(multilineText(), 'a\ud800'), false);
  });

  it('wellFormedText allows control characters but not lone surrogates', () => {
    assert.equal(ok(wellFormedText(), 'a\u0000\u0001\u007f'), true);
    assert.equal(ok(wellFormedText(), '😀'), true);
    assert.equal(ok(wellFormedText(), 'a\ud83d'), false);
  });

  it('queryInteger: absent or empty is the default; anything but one integer in range is refused', () => {
    const q = z.object({ n: queryInteger(1, 100) });
    assert.deepEqual(q.parse({}), {});
    assert.equal(q.parse({ n: '' }).n, undefined);
    assert.equal(q.parse({ n: '7' }).n, 7);
    for (const n of ['0', '101', ' 7', '7 ', '-1', '1e2', '0x7', '7\u0000', ['1', '2']])
      assert.equal(ok(q, { n }), false, JSON.stringify(n));
  });

  it('names the field, never echoes the value, and names an unknown key only when it is plain', () => {
    const schema = z.strictObject({ title: lineText() });
    const refusal = (value: unknown) => {
      try {
        validate(schema, value, 'body');
      } catch (err) {
        assert.ok(err instanceof HttpError);
        assert.equal(err.code, 'BAD_REQUEST');
        return err.detail;
      }
      assert.fail('accepted');
    };
    assert.equal(refusal({ title: 'secret\u0000' }), 'body.title: control characters are not allowed');
    assert.match(refusal({ title: 't', owner: 'x' }), /^body: Unrecognized key: "owner"$/);
    assert.equal(refusal({ title: 't', [`k\u0000${'k'.repeat(1000)}`]: 1 }), 'body: Unrecognized key');
  });
});
