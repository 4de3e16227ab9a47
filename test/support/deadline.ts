/**
 * The decision deadline of tests that are about what is decided, not how fast: the limiter's
 * default (100 ms) is a production figure a busy test machine cannot always give, and a missed
 * deadline answers 503 where the test expects a decision. Tests of the deadline itself set theirs.
 */
export const TEST_DEADLINE_MS = 5_000;

/** {@link TEST_DEADLINE_MS} for the sample API's configuration (`loadConfig`, a child's environment). */
export const TEST_DEADLINE_ENV = Object.freeze({ RATE_LIMIT_DEADLINE_MS: String(TEST_DEADLINE_MS) });
