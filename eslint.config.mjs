import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The library's capabilities: each a folder of src/, used by the app through src/index.ts.
const CAPABILITY_DIRS = [
  'limit',
  'health',
  'shutdown',
  'shed',
  'deadline',
  'redis',
  'metrics',
  'tracing',
  'request-id',
  'errors',
  'breaker',
  'internal',
];
const CAPABILITIES = CAPABILITY_DIRS.map((d) => `src/${d}/**`);
// The OpenTelemetry packages but the API are optional peer dependencies: a static import would
// make `rampart` or `rampart/tracing` unloadable without them. Types are free.
const OPTIONAL_OTEL = {
  regex: '^@opentelemetry/(?!api$)',
  allowTypeImports: true,
  message: 'Optional peer dependency: import its types only, and load it with requireTracingPackages (src/tracing/tracing-packages.ts).',
};
const NO_CONFIG_OR_APP = {
  regex: '^(\\.\\./)+(config|app)(/|$)',
  message:
    'A capability never imports the app configuration (config/) or the sample app (app/): config/ may use capabilities, not the reverse.',
};
const NO_SHUTDOWN = { regex: '^(\\.\\./)+shutdown(/|$)', message: 'The limiter knows nothing of shutdown.' };
const NO_OTEL_SDK = { regex: '^@opentelemetry/(?!api$)', message: 'The limiter uses @opentelemetry/api only, never the SDK.' };
// The published entry points (src/index.ts: `rampart`; src/entries/: `rampart/tracing`, its
// preload, the CLI) compose the capabilities and config/; nothing in src/ imports them back
// (the sample app reaches the library through src/index.ts only, see below).
const NO_ENTRIES = {
  regex: '^(\\.\\./)+entries(/|$)|^\\./entries(/|$)',
  message: 'Nothing in src/ imports an entry point (src/entries/).',
};
const LIBRARY_THROUGH_INDEX = {
  regex: `^(\\.\\./)+(${[...CAPABILITY_DIRS, 'config', 'constants'].join('|')})(/|$)`,
  message: "The sample app reaches the library only through src/index.ts (import from '../index').",
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'scripts/compose/standins/node/.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain CommonJS run inside the stand-in images (no TypeScript there).
    files: ['scripts/compose/standins/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', Buffer: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only src/config/ reads process.env.' }],
    },
  },
  {
    // The fault drill's proxy: plain CommonJS run as it is in the node image, configured by its environment.
    files: ['compose/faults/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', process: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off', 'no-restricted-properties': 'off' },
  },
  // The dependency rules of src/ (README, "How the source is laid out"). The rule takes one
  // option list per file, so each group repeats the patterns that apply to it.
  {
    files: ['src/**'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [OPTIONAL_OTEL, NO_ENTRIES] }] },
  },
  {
    files: CAPABILITIES,
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [OPTIONAL_OTEL, NO_CONFIG_OR_APP, NO_ENTRIES] }] },
  },
  {
    files: ['src/limit/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [NO_CONFIG_OR_APP, NO_SHUTDOWN, NO_OTEL_SDK, NO_ENTRIES] }],
    },
  },
  {
    files: ['src/app/**'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [OPTIONAL_OTEL, LIBRARY_THROUGH_INDEX, NO_ENTRIES] }] },
  },
  {
    files: ['src/config/**', 'test/**', 'bench/**', 'scripts/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
