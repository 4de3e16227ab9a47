// Generators of secrets ("canaries") and of URLs and headers carrying them in every position a
// client controls, for the redaction properties (test/unit/tracing/redaction.properties.test.ts,
// test/integration/redaction-leaks.test.ts). A canary is found in any output by its needles:
// random cores that nothing else produces, unchanged by percent-encoding.
import type { Link, SpanContext } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';

export interface Canary {
  /** The secret as a client sends it (before any encoding). */
  readonly text: string;
  /** Substrings whose presence in an output means the canary leaked. */
  readonly needles: readonly string[];
  readonly shape: 'rmp' | 'jwt' | 'bearer' | 'basic' | 'random' | 'plain';
}

/** A string and the canaries placed in it. */
export interface Placed {
  readonly text: string;
  readonly canaries: readonly Canary[];
}

const B64URL = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'];
const HEX = [...'0123456789abcdef'];
// No hex digit, no letter of `[REDACTED]`'s or of an attribute key's likely runs: a plain
// canary cannot be mistaken for anything else in a span or a log line.
const PLAIN = [...'GHJKMNPQVWXYZghjkmnpqvwxyz'];

const chars = (alphabet: readonly string[], minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength, maxLength }).filter((s) => new Set(s).size >= 6);

/** The core itself and, for a long one, its halves: a partial leak is a leak. */
function needlesOf(core: string): string[] {
  if (core.length < 24) return [core];
  const half = Math.ceil(core.length / 2);
  return [core, core.slice(0, half), core.slice(core.length - half)];
}

/** The sample API's bearer tokens: `rmp_` and 43 base64url characters (src/app/auth/tokens.ts). */
export const rmpToken: fc.Arbitrary<Canary> = chars(B64URL, 43, 43).map((core) => ({
  text: `rmp_${core}`,
  needles: needlesOf(core),
  shape: 'rmp',
}));

/** `eyJ….eyJ….…`, each part random. */
export const jwt: fc.Arbitrary<Canary> = fc.tuple(chars(B64URL, 8, 30), chars(B64URL, 8, 30), chars(B64URL, 8, 43)).map(([h, p, s]) => ({
  text: `eyJ${h}.eyJ${p}.${s}`,
  needles: [h, p, s],
  shape: 'jwt',
}));

/** 32 to 64 random base64url characters (with a capital and a digit, as random ones have) or hex digits. */
export const longRandom: fc.Arbitrary<Canary> = fc
  .oneof(
    chars(B64URL, 32, 64).filter((s) => /[A-Z]/.test(s) && /[0-9]/.test(s)),
    chars(HEX, 32, 64),
  )
  .map((core) => ({ text: core, needles: needlesOf(core), shape: 'random' }));

/** `Bearer <token>`, any case of the scheme, the token an `rmp_` one or random. */
export const bearer: fc.Arbitrary<Canary> = fc
  .tuple(
    fc.constantFrom('Bearer', 'bearer', 'BEARER'),
    fc.oneof(
      rmpToken,
      chars(B64URL, 16, 40).map((core) => ({ text: core, needles: needlesOf(core) })),
    ),
  )
  .map(([scheme, token]) => ({ text: `${scheme} ${token.text}`, needles: token.needles, shape: 'bearer' }));

/** A short random value with no shape at all: only its position can tell it is secret. */
export const plain: fc.Arbitrary<Canary> = chars(PLAIN, 6, 10).map((core) => ({
  text: `Kq${core}`,
  needles: [`Kq${core}`],
  shape: 'plain',
}));

/** The canaries that have a credential's shape: what may be found where names and path segments go. */
export const shaped: fc.Arbitrary<Canary> = fc.oneof(rmpToken, jwt, bearer, longRandom);
/** Any canary: what may be found in a value's position. */
export const anyCanary: fc.Arbitrary<Canary> = fc.oneof(shaped, plain);

/** Ways a client writes a string into a URL; `raw` keeps spaces (not sendable on the wire). */
export type UrlEncoding = 'raw' | 'percent' | 'plus' | 'double' | 'spaces';
const ENCODERS: Record<UrlEncoding, (s: string) => string> = {
  raw: (s) => s,
  percent: (s) => encodeURIComponent(s),
  plus: (s) => s.replace(/ /g, '+'),
  double: (s) => encodeURIComponent(encodeURIComponent(s)),
  spaces: (s) => s.replace(/ /g, '%20'),
};

/** Options of {@link urlWithCanaries}. */
export interface UrlOptions {
  /** Only encodings a real request line can carry (no raw space). */
  readonly wire?: boolean;
}

const encoding = (o: UrlOptions) =>
  fc.constantFrom<UrlEncoding>(
    ...(o.wire === true ? (['percent', 'plus', 'double', 'spaces'] as const) : (['raw', 'percent', 'plus', 'double', 'spaces'] as const)),
  );

function placed(
  canary: fc.Arbitrary<Canary>,
  o: UrlOptions,
  prefixes: readonly string[],
  suffixes: readonly string[],
): fc.Arbitrary<Placed> {
  return fc.tuple(canary, encoding(o), fc.constantFrom(...prefixes), fc.constantFrom(...suffixes)).map(([c, enc, pre, post]) => {
    let text = `${pre}${ENCODERS[enc](c.text)}${post}`;
    // A space that stays raw (in `raw` or in a prefix) cannot travel in a request line.
    if (o.wire === true) text = text.replace(/ /g, '%20');
    return { text, canaries: [c] };
  });
}
const filler = (values: readonly string[]): fc.Arbitrary<Placed> => fc.constantFrom(...values).map((text) => ({ text, canaries: [] }));

const FILLER_SEGMENTS = ['v1', 'notes', 'status', 'a', 'x.json', 'nowhere', '9b2f3a6e-0c51-4d1e-9d8a-7f6a5b4c3d2e', ''];
const FILLER_NAMES = ['q', 'page', 'next', 'token', 'Token', 'api_key', 'sort', 'filter[a]', 'utm_source', 'a'];
const FILLER_VALUES = ['', '1', 'red', '/account/settings', 'a=b', 'x?y'];
// Affixes a value may carry: `/`, `=`, `?` and escapes keep it one value; `&`, `;`, `#` make the
// canary a parameter of its own (a bare name) or the fragment: only shaped canaries get those.
const VALUE_PREFIXES = ['', '/', '/account/', '=', '?', '%2F', 'next=', 'a/b?c=', '%3D'];
const VALUE_SUFFIXES = ['', '/', '=', '?x', '%3D', '/end'];
const SPLITTING_PREFIXES = [...VALUE_PREFIXES, '&', ';', 'x&', '#'];
const SEGMENT_PREFIXES = ['', 'x', 'id-', 'x.'];
const SEGMENT_SUFFIXES = ['', '.json', '-1'];

/** A path segment: filler, or a shaped canary (raw, `%20`, `+`, double-encoded), glued to text or not. */
export const pathSegment = (o: UrlOptions = {}): fc.Arbitrary<Placed> =>
  fc.oneof(filler(FILLER_SEGMENTS), placed(shaped, o, SEGMENT_PREFIXES, SEGMENT_SUFFIXES));

/** A query value: filler, or any canary with `/`, `=`, `?`, escapes around it (shaped ones also `&`, `;`, `#`). */
export const queryValue = (o: UrlOptions = {}): fc.Arbitrary<Placed> =>
  fc.oneof(filler(FILLER_VALUES), placed(plain, o, VALUE_PREFIXES, VALUE_SUFFIXES), placed(shaped, o, SPLITTING_PREFIXES, VALUE_SUFFIXES));

/** A query name: filler (repeats likely), or a shaped canary. */
export const queryName = (o: UrlOptions = {}): fc.Arbitrary<Placed> => fc.oneof(filler(FILLER_NAMES), placed(shaped, o, [''], ['']));

/** One parameter: `name=value`, or a bare name. */
const parameter = (o: UrlOptions): fc.Arbitrary<Placed> =>
  fc
    .tuple(queryName(o), fc.option(queryValue(o), { nil: undefined }))
    .map(([name, value]) =>
      value === undefined ? name : { text: `${name.text}=${value.text}`, canaries: [...name.canaries, ...value.canaries] },
    );

function join(parts: readonly Placed[], separators: readonly string[]): Placed {
  return {
    text: parts.map((p, i) => (i === 0 ? p.text : `${separators[i % separators.length] ?? '&'}${p.text}`)).join(''),
    canaries: parts.flatMap((p) => p.canaries),
  };
}

/** A query (no `?`): parameters split by `&` and `;`, names repeated, bare names, one parameter repeated verbatim at times. */
export const query = (o: UrlOptions = {}): fc.Arbitrary<Placed> =>
  fc
    .tuple(
      fc.array(parameter(o), { minLength: 1, maxLength: 6 }),
      fc.array(fc.constantFrom('&', ';'), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
    )
    .map(([params, separators, repeat]) => join(repeat && params[0] !== undefined ? [...params, params[0]] : params, separators));

/** A URL and the canaries in it; `target` is its origin form (`/path?query#fragment`). */
export interface GeneratedUrl extends Placed {
  /** Absolute form when it has a scheme and authority, else the same as `target`. */
  readonly full: string;
  readonly target: string;
}

/**
 * A URL with canaries anywhere a client puts text: userinfo (user or password), path segments,
 * query names, bare names, repeated names, values, the fragment.
 */
export const urlWithCanaries = (o: UrlOptions = {}): fc.Arbitrary<GeneratedUrl> =>
  fc
    .record({
      userinfo: fc.option(
        fc.oneof(
          anyCanary.map((c) => ({ text: `user:${encodeURIComponent(c.text)}`, canaries: [c] })),
          anyCanary.map((c) => ({ text: encodeURIComponent(c.text), canaries: [c] })),
        ),
        { nil: undefined },
      ),
      absolute: fc.boolean(),
      segments: fc.array(pathSegment(o), { minLength: 1, maxLength: 5 }),
      query: fc.option(query(o), { nil: undefined }),
      fragment: fc.option(fc.oneof(filler(['top', '']), placed(anyCanary, o, ['', 'a?b=', '/'], [''])), { nil: undefined }),
    })
    .map(({ userinfo, absolute, segments, query: q, fragment }) => {
      const path = `/${segments.map((s) => s.text).join('/')}`;
      const target = `${path}${q === undefined ? '' : `?${q.text}`}${fragment === undefined ? '' : `#${fragment.text}`}`;
      const withAuthority = absolute || userinfo !== undefined;
      const full = withAuthority ? `http://${userinfo === undefined ? '' : `${userinfo.text}@`}api.example${target}` : target;
      return {
        full,
        target,
        text: full,
        canaries: [
          ...(userinfo?.canaries ?? []),
          ...segments.flatMap((s) => s.canaries),
          ...(q?.canaries ?? []),
          ...(fragment?.canaries ?? []),
        ],
      };
    });

/** A canary in an `Authorization` value: `Bearer <token>`, `Basic <base64(user:secret)>`, or bare. */
export const authorizationValue: fc.Arbitrary<Placed> = fc.oneof(
  bearer.map((c) => ({ text: c.text, canaries: [c] })),
  anyCanary.map((c) => {
    const basic = Buffer.from(`user:${c.text}`).toString('base64');
    return { text: `Basic ${basic}`, canaries: [{ text: basic, needles: [basic], shape: 'basic' as const }, c] };
  }),
  anyCanary.map((c) => ({ text: c.text, canaries: [c] })),
);

/** A header's name in one of the cases clients send. */
const cased = (name: string) =>
  fc.constantFrom(
    name,
    name.toUpperCase(),
    name.replace(/(^|-)([a-z])/g, (_m, d: string, l: string) => `${d}${l.toUpperCase()}`),
  );

/** The request headers that carry a secret, each with a canary: credentials, cookies, trace state, baggage. */
export interface CredentialHeaders extends Placed {
  readonly headers: Readonly<Record<string, string>>;
}

export const credentialHeaders: fc.Arbitrary<CredentialHeaders> = fc
  .record({
    authorization: fc.tuple(cased('authorization'), authorizationValue),
    proxy: fc.tuple(cased('proxy-authorization'), authorizationValue),
    apiKey: fc.tuple(fc.constantFrom('x-api-key', 'X-API-Key', 'X-Api-Key'), anyCanary),
    cookie: fc.tuple(cased('cookie'), anyCanary, fc.constantFrom('session', 'sid', 'theme')),
    tracestate: fc.tuple(cased('tracestate'), anyCanary),
    baggage: fc.tuple(cased('baggage'), anyCanary),
  })
  .map(({ authorization, proxy, apiKey, cookie, tracestate, baggage }) => {
    const headers: Record<string, string> = {
      [authorization[0]]: authorization[1].text,
      [proxy[0]]: proxy[1].text,
      [apiKey[0]]: apiKey[1].text,
      [cookie[0]]: `lang=en; ${cookie[2]}=${encodeURIComponent(cookie[1].text)}`,
      // Trace-state values may not hold `,` or `=`; baggage values are percent-encoded.
      [tracestate[0]]: `rojo=00f067aa0ba902b7,vendor=${encodeURIComponent(tracestate[1].text)}`,
      [baggage[0]]: `k1=${encodeURIComponent(baggage[1].text)},userId=alice`,
    };
    return {
      headers,
      text: JSON.stringify(headers),
      canaries: [...authorization[1].canaries, ...proxy[1].canaries, apiKey[1], cookie[1], tracestate[1], baggage[1]],
    };
  });

/** The first needle of `canaries` found in `text`, with the canary it belongs to. */
export function leaked(text: string, canaries: readonly Canary[]): string | undefined {
  for (const c of canaries) {
    for (const n of c.needles)
      if (text.includes(n))
        return `${c.shape} canary ${JSON.stringify(c.text)} (found its needle ${JSON.stringify(n)}; needles are random, so some canary leaked)`;
  }
  return undefined;
}

/** The seed of the last property started by {@link runs}: printed when its test fails, even by a timeout. */
let lastSeed: number | undefined;
afterEach(function () {
  if (lastSeed !== undefined && this.currentTest?.state === 'failed') {
    // fast-check prints its seed when the property fails; a test that mocha timed out says nothing.
    console.log(`      fast-check seed of this property: FC_SEED=${lastSeed} (replay with FC_SEED=${lastSeed})`);
  }
  lastSeed = undefined;
});

/**
 * fast-check parameters: `numRuns`, and `FC_SEED` (with `FC_PATH`) to replay a reported failure.
 * Without FC_SEED the seed is drawn here, so a failed test prints it even when it never returned.
 */
export function runs(numRuns: number): fc.Parameters<unknown> {
  const given = process.env['FC_SEED'];
  const path = process.env['FC_PATH'];
  const seed = given === undefined || given === '' ? (Date.now() ^ Math.floor(Math.random() * 2 ** 31)) | 0 : Number(given);
  lastSeed = seed;
  return { numRuns, seed, ...(given === undefined || given === '' || path === undefined || path === '' ? {} : { path }) };
}

const contextText = (c: SpanContext | undefined) => (c === undefined ? undefined : { ...c, traceState: c.traceState?.serialize() });

/** All of an exported span, as text: name, contexts (trace state included), attributes, events, links, status, resource. */
export function spanText(s: ReadableSpan): string {
  return JSON.stringify({
    name: s.name,
    spanContext: contextText(s.spanContext()),
    parentSpanContext: contextText(s.parentSpanContext),
    attributes: s.attributes,
    events: s.events,
    links: s.links.map((l: Link) => ({ ...l, context: contextText(l.context) })),
    status: s.status,
    resource: s.resource.attributes,
  });
}
