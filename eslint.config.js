// Lint: typescript-eslint with type-checked rules; formatting is prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// The layers of ../shared/DESIGN.md and docs/architecture.md, top to bottom: each imports only the
// layers below it. Enforced with no-restricted-imports on the import text, so every file sits at a
// known depth under src/.
const LAYERS = [
  'cli',
  'server',
  'admin',
  'router',
  'drachtio',
  'modes',
  'dialog',
  'pool',
  'guard',
  'transaction',
  'hep',
  'transport',
  'config',
  'endpoints',
  'sip',
  'base',
];

/** "Anything `up` folders up that is not one of `allowed`", as a regex on the import text. */
function outside(up, allowed) {
  const prefix = '\\.\\./'.repeat(up);
  return allowed.length === 0 ? `^${prefix}` : `^${prefix}(?!(?:${allowed.join('|')})/)`;
}

// Engines are peers: the native router and the drachtio engine both sit on the modes, neither on the other.
const PEERS = { router: ['drachtio'] };

function layerRules() {
  return LAYERS.map((name, i) => {
    const below = LAYERS.slice(i + 1).filter((b) => !(PEERS[name] ?? []).includes(b));
    const message = `${name}/ may import only from ${below.join(', ') || 'nothing of the service'} (docs/architecture.md, layers)`;
    return {
      files: [`src/${name}/*.ts`],
      rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: outside(1, below), message }] }] },
    };
  });
}

// Modes are peers: a mode's folder imports the layers below modes/ and modes/'s own seam (mode.ts,
// shared-checks.ts), never another mode or the registry that lists them all.
const modeFolders = {
  files: ['src/modes/*/*.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: outside(2, LAYERS.slice(LAYERS.indexOf('modes') + 1)),
            message: `a mode may import only from ${LAYERS.slice(LAYERS.indexOf('modes') + 1).join(', ')} (docs/architecture.md, layers)`,
          },
          {
            regex: '^\\.\\./(?!\\.\\./)(?!(?:mode|shared-checks)\\.js$)',
            message: 'modes are peers: a mode imports only ../mode.js and ../shared-checks.js of modes/',
          },
        ],
      },
    ],
  },
};

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
  // Layering: zero exceptions.
  ...layerRules(),
  modeFolders,
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
