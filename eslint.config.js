// ESLint for the TypeScript sources, tests and benchmarks; Prettier owns the formatting.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'workdir/', 'bench/out/', 'checkpoints/', '**/*.wasm.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // The served page's scripts run in the browser.
  { files: ['src/serve/public/**'], languageOptions: { globals: { ...globals.browser } } },
  // Tests read loosely typed JSON reports; `any` there is a convenience, not an API.
  { files: ['test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
