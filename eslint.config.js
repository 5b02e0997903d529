// Lint: typescript-eslint with type-checked rules; formatting is prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/** Files under `files` may import, of the service's own folders, only those in `below`. */
function layer(files, below) {
  return [
    {
      files: [files],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: [
              {
                // Anything one folder up that is not a folder below this one (top-level files included).
                regex: below.length === 0 ? '^\\.\\./' : `^\\.\\./(?!(?:${below.join('|')})/)`,
                message: `${files.slice(4, -3)}/ may import only from ${below.join(', ') || 'nothing above it'} (../shared/DESIGN.md, layers)`,
              },
            ],
          },
        ],
      },
    },
  ];
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/out/**', 'native/build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.mjs', 'bench/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  // Layering (../shared/DESIGN.md): a layer imports only the layers below it. Enforced for the lower
  // layers, which hold to it today; the upper ones (endpoints → config, transport → config and the
  // modes inside router/) are the architecture issue's to untangle first.
  ...layer('src/base/**', []),
  ...layer('src/sip/**', ['base']),
  ...layer('src/config/**', ['base', 'sip', 'endpoints']),
  ...layer('src/transaction/**', ['base', 'sip', 'transport']),
  ...layer('src/pool/**', ['base', 'sip', 'endpoints', 'config', 'transport', 'transaction', 'guard']),
  {
    files: ['src/cli/**', 'bench/**', 'test/**', 'native/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: globals.node, parserOptions: { projectService: false, project: null } },
  },
);
