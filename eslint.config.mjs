import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Only src/config/ reads process.env.' },
      ],
    },
  },
  {
    // The OpenTelemetry packages but the API are optional peer dependencies: a static import
    // would make `rampart` or `rampart/tracing` unloadable without them. Types are free.
    files: ['src/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^@opentelemetry/(?!api$)',
              allowTypeImports: true,
              message: 'Optional peer dependency: import its types only, and load it with requireTracingPackages (src/tracing/tracing-packages.ts).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/config/**', 'test/**', 'bench/**', 'scripts/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
