import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const CORE_IMPORTS_NO_PLUGIN =
  'The core never imports a plugin: offer a capability on MeshPlugin (gateway/pipeline/capabilities.ts) and wire it in gateway/composition/plugin-table.ts.';
const PLUGIN_IMPORTS_NO_PLUGIN =
  'A plugin never imports another plugin: what plugins share (the metrics registry, request context, config kinds) lives in gateway/.';
// From a plugin's own folder, `../x` is a sibling plugin (the core is `../../gateway`); a path through plugins/ is one too.
const OTHER_PLUGIN = '^\\.\\./(?!\\.\\./)|(^|/)plugins(/|$)';
const NO_PLUGIN = { regex: '(^|/)plugins(/|$)', message: CORE_IMPORTS_NO_PLUGIN };
const SNAPSHOT_IMPORTS_NOTHING_RUNNING =
  'The snapshot is compiled below the code that serves and runs it: gateway/snapshot never imports gateway/runtime, gateway/proxy or gateway/tcp; move the helper it needs down into gateway/snapshot (or lower).';
const SERVING_IMPORTS_NO_RUNTIME = 'gateway/proxy and gateway/tcp serve a snapshot; gateway/runtime runs them and is never imported by them.';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // Dependencies point down: the core reaches plugins only through the capabilities of MeshPlugin
    // (gateway/pipeline/), and the one composition root (gateway/composition/) builds their table.
    files: ['gateway/**/*.ts'],
    ignores: ['gateway/composition/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NO_PLUGIN] }],
      'no-restricted-syntax': ['error', { selector: 'ImportExpression[source.value=/(^|\\/)plugins(\\/|$)/]', message: CORE_IMPORTS_NO_PLUGIN }],
    },
  },
  {
    // runtime -> proxy, tcp -> snapshot: a later block replaces the rule's options, so the plugin pattern is repeated.
    files: ['gateway/snapshot/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NO_PLUGIN, { regex: '^\\.\\./(runtime|proxy|tcp)/', message: SNAPSHOT_IMPORTS_NOTHING_RUNNING }] }],
    },
  },
  {
    files: ['gateway/proxy/**/*.ts', 'gateway/tcp/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NO_PLUGIN, { regex: '^\\.\\./runtime/', message: SERVING_IMPORTS_NO_RUNTIME }] }],
    },
  },
  {
    files: ['plugins/*/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: OTHER_PLUGIN, message: PLUGIN_IMPORTS_NO_PLUGIN }] }],
      'no-restricted-syntax': ['error', { selector: `ImportExpression[source.value=/${OTHER_PLUGIN.replaceAll('/', '\\/')}/]`, message: PLUGIN_IMPORTS_NO_PLUGIN }],
    },
  },
);
