import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, defaultPolicies, loadPolicyFile } from '../../../src';

// src/config/policies-file.ts (the file, RATE_LIMIT_POLICIES_FILE) and src/limit/policy-set.ts (the document).
describe('policies file (src/config/policies-file.ts)', () => {
  it('pins the default policies', () => {
    assert.deepEqual(defaultPolicies(5, 10), {
      public: { algorithm: 'token_bucket', rps: 5, burst: 10, key: 'ip', failMode: 'closed' },
      authenticated: { algorithm: 'token_bucket', rps: 5, burst: 10, key: 'principal', failMode: 'closed' },
      login_ip: { algorithm: 'sliding_window', limit: 20, windowSeconds: 60, key: 'ip', failMode: 'closed' },
      login_credential: {
        algorithm: 'sliding_window',
        limit: 5,
        windowSeconds: 60,
        key: 'credential',
        failMode: 'closed',
        settle: 'failures',
      },
      auth_ip: { algorithm: 'token_bucket', rps: 25, burst: 50, key: 'ip', failMode: 'closed' },
    });
  });

  describe('loadPolicyFile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-policies-'));
    const write = (name: string, content: string) => {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    };
    const defaults = defaultPolicies(5, 10);

    it("reads a policy's cost", () => {
      const set = loadPolicyFile(
        write('cost.json', '{"policies":{"x":{"algorithm":"sliding_window","limit":5,"windowSeconds":1,"cost":2}}}'),
        defaults,
      );
      assert.deepEqual(set.policies['x'], { algorithm: 'sliding_window', limit: 5, windowSeconds: 1, cost: 2 });
    });

    it('reads quotas, per calendar period or periodSeconds', () => {
      const set = loadPolicyFile(
        write(
          'quota.json',
          '{"policies":{"d":{"algorithm":"quota","limit":10000,"period":"day","key":"principal"},"f":{"algorithm":"quota","limit":3,"periodSeconds":600}}}',
        ),
        defaults,
      );
      assert.deepEqual(set.policies['d'], { algorithm: 'quota', limit: 10_000, period: 'day', key: 'principal' });
      assert.deepEqual(set.policies['f'], { algorithm: 'quota', limit: 3, periodSeconds: 600 });
    });

    it('reads concurrency policies, with their lease', () => {
      const set = loadPolicyFile(
        write('concurrency.json', '{"policies":{"u":{"algorithm":"concurrency","limit":4,"leaseSeconds":120,"key":"principal"}}}'),
        defaults,
      );
      assert.deepEqual(set.policies['u'], { algorithm: 'concurrency', limit: 4, leaseSeconds: 120, key: 'principal' });
    });

    it('merges the file over the defaults and keeps its surfaces', () => {
      const path = write(
        'ok.json',
        JSON.stringify({
          policies: {
            public: { algorithm: 'token_bucket', rps: 50, burst: 100 },
            api: { algorithm: 'sliding_window', limit: 10, windowSeconds: 1, key: 'credential', failMode: 'open' },
          },
          surfaces: [
            { surface_id: 'api', method: 'POST', path: '/api*', policies: ['api', 'login_ip'], rate_limit_rps: 3 },
            { surfaceId: 'rest', path: '/*', policies: [], exempt: true },
          ],
        }),
      );
      const set = loadPolicyFile(path, defaults);
      assert.deepEqual(set.policies['public'], { algorithm: 'token_bucket', rps: 50, burst: 100 });
      assert.deepEqual(set.policies['login_ip'], defaults['login_ip']);
      assert.equal(set.policies['api']?.failMode, 'open');
      assert.deepEqual(set.surfaces, [
        { surfaceId: 'api', method: 'POST', path: '/api*', policies: ['api', 'login_ip'], rateLimitRps: 3 },
        { surfaceId: 'rest', path: '/*', policies: [], exempt: true },
      ]);
      assert.equal(loadPolicyFile(write('nosurf.json', '{}'), defaults).surfaces, undefined);
    });

    it('names every mistake of the file in one refusal, as check-policies does', () => {
      const path = write(
        'many.json',
        JSON.stringify({
          policies: { x: { algorithm: 'token_bucket', rps: -1, burst: 0 } },
          surfaces: [{ surfaceId: 'a', path: '/a', policies: ['public'] }],
        }),
      );
      assert.throws(
        () => loadPolicyFile(path, defaults),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.variable, 'RATE_LIMIT_POLICIES_FILE');
          assert.match(err.message, /: 2 mistakes: policies\.x\.rps: .*; policies\.x\.burst: /);
          assert.ok(!err.message.includes('\n'), 'one line');
          return true;
        },
      );
    });

    it('refuses a table a request could escape: no catch-all, surfaces that take the same requests, a prefix never reached', () => {
      const cases: ReadonlyArray<readonly [unknown[], RegExp]> = [
        [[{ surfaceId: 'a', path: '/a', policies: ['public'] }], /surfaces: no surface takes the requests the others do not/],
        [
          [
            { surfaceId: 'a', path: '/A/', policies: ['public'] },
            { surfaceId: 'b', path: '/a', policies: ['public'] },
            { surfaceId: 'rest', path: '/*', policies: ['public'] },
          ],
          /surfaces: surfaces "a" and "b" take the same requests/,
        ],
        [
          [
            { surfaceId: 'rest', path: '/*', policies: ['public'] },
            { surfaceId: 'b', path: '/b*', policies: ['public'] },
          ],
          /surfaces: surface "b" is never reached: surface "rest"/,
        ],
        [[{ surfaceId: 'rest', path: '/*', policies: [] }], /surfaces\.0\.policies: at least one policy \(or "exempt": true/],
        [
          [{ surfaceId: 'rest', path: '/*', policies: ['public'], exempt: true }],
          /surfaces\.0\.policies: an exempt surface charges nothing/,
        ],
        [[{ surfaceId: 'rest', path: '/a*b*', policies: ['public'] }], /surfaces\.0\.path: an exact path, or a prefix/],
      ];
      cases.forEach(([surfaces, message], i) =>
        assert.throws(() => loadPolicyFile(write(`table${i}.json`, JSON.stringify({ surfaces })), defaults), message),
      );
    });

    it('reads surfaces in camel case, and the snake case of 0.x for one release (the same result); both spellings of one field are refused', () => {
      const rest = { surfaceId: 'rest', path: '/*', policies: ['public'] };
      const camel = { surfaces: [{ surfaceId: 's', path: '/a', policies: ['public'], rateLimitRps: 2, rateLimitBurst: 4 }, rest] };
      const snake = { surfaces: [{ surface_id: 's', path: '/a', policies: ['public'], rate_limit_rps: 2, rate_limit_burst: 4 }, rest] };
      const expected = [{ surfaceId: 's', path: '/a', policies: ['public'], rateLimitRps: 2, rateLimitBurst: 4 }, rest];
      assert.deepEqual(loadPolicyFile(write('camel.json', JSON.stringify(camel)), defaults).surfaces, expected);
      assert.deepEqual(loadPolicyFile(write('snake.json', JSON.stringify(snake)), defaults).surfaces, expected);
      const both = { surfaces: [{ surfaceId: 's', surface_id: 's', path: '/a', policies: ['public'] }] };
      assert.throws(
        () => loadPolicyFile(write('both.json', JSON.stringify(both)), defaults),
        /surfaces\.0\.surface_id: surfaceId and surface_id are the same field: keep surfaceId/,
      );
      const none = { surfaces: [{ path: '/a', policies: ['public'] }] };
      assert.throws(() => loadPolicyFile(write('none.json', JSON.stringify(none)), defaults), /surfaces\.0\.surfaceId: Required/);
      // The example file the README points to uses the one case.
      const example = readFileSync(join(__dirname, '..', '..', '..', 'config', 'policies.example.json'), 'utf8');
      assert.doesNotMatch(example, /_id|rate_limit/);
      assert.ok((loadPolicyFile(join(__dirname, '..', '..', '..', 'config', 'policies.example.json'), defaults).surfaces ?? []).length > 0);
    });

    const mistakes: ReadonlyArray<readonly [string, string, RegExp]> = [
      ['not JSON', '{policies:', /is not valid JSON/],
      ['unknown top-level field', '{"polices":{}}', /the top level: Unrecognized key/],
      ['unknown algorithm', '{"policies":{"x":{"algorithm":"leaky","rps":1}}}', /policies\.x\.algorithm/],
      ['negative rps', '{"policies":{"x":{"algorithm":"token_bucket","rps":-1,"burst":2}}}', /policies\.x\.rps/],
      ['fractional burst', '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":2.5}}}', /policies\.x\.burst/],
      ['string limit', '{"policies":{"x":{"algorithm":"sliding_window","limit":"5","windowSeconds":60}}}', /policies\.x\.limit/],
      ['missing window', '{"policies":{"x":{"algorithm":"sliding_window","limit":5}}}', /policies\.x\.windowSeconds/],
      ['bad key kind', '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":1,"key":"cookie"}}}', /policies\.x\.key/],
      [
        'bad fail mode',
        '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":1,"failMode":"sometimes"}}}',
        /policies\.x\.failMode/,
      ],
      [
        'extra policy field',
        '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":1,"burts":3}}}',
        /policies\.x: Unrecognized key/,
      ],
      ['upper-case name', '{"policies":{"Public":{"algorithm":"token_bucket","rps":1,"burst":1}}}', /policies\.Public/],
      ['surface without path', '{"surfaces":[{"surface_id":"s","policies":["public"]}]}', /surfaces\.0\.path/],
      ['relative path', '{"surfaces":[{"surface_id":"s","path":"v1","policies":["public"]}]}', /surfaces\.0\.path/],
      [
        'unknown policy',
        '{"surfaces":[{"surface_id":"s","path":"/v1","policies":["nope"]}]}',
        /surfaces\.0\.policies: unknown policy "nope"/,
      ],
      ['empty policies', '{"surfaces":[{"surface_id":"s","path":"/v1","policies":[]}]}', /surfaces\.0\.policies/],
      [
        'duplicate id',
        '{"surfaces":[{"surface_id":"s","path":"/a","policies":["public"]},{"surface_id":"s","path":"/b","policies":["public"]}]}',
        /surfaces\.1\.surface_id: "s" is used twice/,
      ],
      ['bad method', '{"surfaces":[{"surface_id":"s","method":"GE T","path":"/a","policies":["public"]}]}', /surfaces\.0\.method/],
      ['empty file', '', /is not valid JSON/],
      ['top-level array', '[]', /the top level/],
      ['top-level null', 'null', /the top level/],
      ['zero window', '{"policies":{"x":{"algorithm":"sliding_window","limit":5,"windowSeconds":0}}}', /policies\.x\.windowSeconds/],
      ['infinite rps', '{"policies":{"x":{"algorithm":"token_bucket","rps":1e400,"burst":2}}}', /policies\.x\.rps/],
      ['quote in a name', '{"policies":{"a\\"b":{"algorithm":"token_bucket","rps":1,"burst":1}}}', /policies\.a"b/],
      ['brace in a name', '{"policies":{"a{b}":{"algorithm":"token_bucket","rps":1,"burst":1}}}', /policies\.a\{b\}/],
      [
        'negative override',
        '{"surfaces":[{"surface_id":"s","path":"/a","policies":["public"],"rate_limit_rps":-5}]}',
        /surfaces\.0\.rate_limit_rps/,
      ],
      ['policies as a list', '{"policies":[{"algorithm":"token_bucket","rps":1,"burst":1}]}', /policies/],
      [
        'duplicate camel id',
        '{"surfaces":[{"surfaceId":"s","path":"/a","policies":["public"]},{"surfaceId":"s","path":"/b","policies":["public"]}]}',
        /surfaces\.1\.surfaceId: "s" is used twice/,
      ],
      [
        'camel override below zero',
        '{"surfaces":[{"surfaceId":"s","path":"/a","policies":["public"],"rateLimitBurst":0}]}',
        /surfaces\.0\.rateLimitBurst/,
      ],
      [
        'a cost larger than the bucket',
        '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":2,"cost":3}}}',
        /policies\.x\.cost: at most 2/,
      ],
      [
        'a fractional cost',
        '{"policies":{"x":{"algorithm":"sliding_window","limit":5,"windowSeconds":1,"cost":1.5}}}',
        /policies\.x\.cost/,
      ],
      [
        'a quota with both period and periodSeconds',
        '{"policies":{"q":{"algorithm":"quota","limit":5,"period":"day","periodSeconds":60}}}',
        /policies\.q\.period: exactly one of period/,
      ],
      ['a quota with neither period', '{"policies":{"q":{"algorithm":"quota","limit":5}}}', /policies\.q\.period: exactly one of period/],
      ['a quota per week', '{"policies":{"q":{"algorithm":"quota","limit":5,"period":"week"}}}', /policies\.q\.period/],
      ['a quota of half seconds', '{"policies":{"q":{"algorithm":"quota","limit":5,"periodSeconds":0.5}}}', /policies\.q\.periodSeconds/],
      [
        'a concurrency lease of 0',
        '{"policies":{"u":{"algorithm":"concurrency","limit":4,"leaseSeconds":0}}}',
        /policies\.u\.leaseSeconds/,
      ],
      ['an unknown mode', '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":2,"mode":"dry"}}}', /policies\.x\.mode/],
      ['an empty allow entry', '{"policies":{"x":{"algorithm":"token_bucket","rps":1,"burst":2,"allow":[""]}}}', /policies\.x\.allow\.0/],
      ['surface id with a brace', '{"surfaces":[{"surface_id":"s}","path":"/a","policies":["public"]}]}', /surfaces\.0\.surface_id/],
    ];
    for (const [what, content, pattern] of mistakes) {
      it(`refuses a file with ${what}, naming the place and RATE_LIMIT_POLICIES_FILE`, () => {
        const path = write(`${what.replace(/\W+/g, '-')}.json`, content);
        assert.throws(
          () => loadPolicyFile(path, defaults),
          (err: unknown) => {
            assert.ok(err instanceof ConfigError);
            assert.equal(err.variable, 'RATE_LIMIT_POLICIES_FILE');
            assert.match(err.message, pattern);
            assert.match(err.message, /Fix: /);
            assert.ok(!err.message.includes('\n'));
            return true;
          },
        );
      });
    }

    it('refuses a missing file', () => {
      assert.throws(() => loadPolicyFile(join(dir, 'absent.json'), defaults), /cannot be read \(ENOENT\)/);
    });
  });
});
