/**
 * The one definition of every `meshgate` command and option. The parser (args.ts), `meshgate --help`,
 * `meshgate <command> --help`, the usage shown with a usage error and the README's CLI table are all
 * generated from it, so none of them can advertise an option that does not exist.
 * Adding a command is one entry in COMMANDS (its module is imported only when it runs).
 */
import { EXPLAIN_REQUEST_FIELDS } from '../runtime/explain-input.js';
import { LOG_LEVELS } from './args.js';
import type { CommandSpec, OptionSpec } from './args.js';
import { INJECT_DEFAULTS } from './inject-defaults.js';

const CONFIG: OptionSpec = { name: 'config', short: 'c', value: '<file|dir>', required: true, description: 'config file, or a directory of *.yaml|*.yml|*.json' };
const MODE: OptionSpec = {
  name: 'mode',
  value: 'ingress|sidecar',
  description: 'which proxy to be; --workload implies sidecar',
  default: 'ingress',
};
const WORKLOAD: OptionSpec = {
  name: 'workload',
  value: '<[namespace/]name>',
  description: 'the WorkloadEntry this sidecar runs beside (implies --mode sidecar)',
};

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    summary: 'starts the proxy; refuses an invalid config (exit 1)',
    options: [
      CONFIG,
      MODE,
      WORKLOAD,
      { name: 'admin-address', value: '<host:port>', description: 'admin API address (overrides MeshConfig adminAddress)' },
      { name: 'status-address', value: '<host:port>', description: 'status listener, GET /healthz/ready only (overrides MeshConfig statusAddress; empty: off)', default: '0.0.0.0:15021' },
      { name: 'metrics-address', value: '<host:port>', description: 'metrics listener, GET /stats/prometheus only (overrides MeshConfig metricsAddress; empty: off)', default: '0.0.0.0:15020' },
      { name: 'concurrency', value: '<n>', description: 'worker threads serving the proxy listeners (overrides MeshConfig concurrency; unset: the available cores at the ingress, 1 in a sidecar)' },
      { name: 'log-level', value: '<level>', description: `one of ${LOG_LEVELS.join(', ')}`, default: 'info' },
    ],
    example: 'meshgate run -c config/demo --workload my-app/product-v1',
    load: async () => (await import('./run.js')).runCommand,
  },
  {
    name: 'validate',
    summary: 'the same load and compile as `run`; prints `file:line:col CODE kind ns/name: message`; exit 0 valid, 1 invalid (warnings only with --strict)',
    options: [
      CONFIG,
      { name: 'output', short: 'o', value: 'text|json', description: 'diagnostics as text lines or a JSON array', default: 'text' },
      { name: 'strict', description: 'warnings count as errors' },
      MODE,
      WORKLOAD,
    ],
    example: 'meshgate validate -c config/demo --strict',
    load: async () => (await import('./commands.js')).validateCommand,
  },
  {
    name: 'explain',
    summary: 'which AuthorizationPolicy decides a described request, and why (as the proxy named by --mode/--workload)',
    options: [
      CONFIG,
      MODE,
      WORKLOAD,
      ...EXPLAIN_REQUEST_FIELDS.map((field) => ({
        name: field.option,
        value: field.value,
        description: field.description,
        ...(field.multiple === true ? { multiple: true } : {}),
      })),
    ],
    example: 'meshgate explain -c config/demo --workload my-app/product-v1 --principal cluster.local/ns/istio-system/sa/istio-ingressgateway --path /api/products/1',
    load: async () => (await import('./commands.js')).explainCommand,
  },
  {
    name: 'ca init',
    summary: 'creates a mesh root CA (EC P-256) in a directory',
    options: [
      { name: 'dir', value: '<dir>', required: true, description: 'where ca.crt and ca.key are written' },
      { name: 'trust-domain', value: '<domain>', description: 'SPIFFE trust domain', default: 'cluster.local' },
      { name: 'force', description: 'overwrite an existing CA' },
    ],
    example: 'meshgate ca init --dir ./pki',
    load: async () => (await import('./commands.js')).caInitCommand,
  },
  {
    name: 'ca issue',
    summary: 'issues a SPIFFE workload certificate from that CA',
    options: [
      { name: 'dir', value: '<dir>', required: true, description: 'the CA directory' },
      { name: 'namespace', value: '<ns>', required: true, description: 'workload namespace' },
      { name: 'service-account', value: '<sa>', required: true, description: 'workload service account' },
      { name: 'out', value: '<dir>', description: 'where <sa>.crt, <sa>.key and the root certificate are written', default: 'the CA directory' },
    ],
    example: 'meshgate ca issue --dir ./pki --namespace my-app --service-account product-service',
    load: async () => (await import('./commands.js')).caIssueCommand,
  },
  {
    name: 'demo',
    summary: 'the demo mesh on 127.0.0.1: an ingress, three apps and their sidecars (`npm start`)',
    options: [
      {
        name: 'config',
        short: 'c',
        value: '<dir>',
        description: 'the demo config directory; its Gateway servers bind 127.0.0.1, a copy without `bind` listens on every address',
        default: 'config/demo',
      },
      { name: 'dir', value: '<dir>', description: 'where the demo writes its certificates and logs when the config directory is read-only', default: '$TMPDIR/meshgate-demo-<uid>' },
    ],
    example: 'meshgate demo',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  {
    name: 'inject',
    summary: 'adds the meshgate sidecar to Kubernetes workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod) and prints the WorkloadEntry + Sidecar they need, as `istioctl kube-inject`',
    options: [
      { name: 'filename', short: 'f', value: '<file|->', description: 'the manifests to inject', default: '- (stdin)' },
      { name: 'image', value: '<image>', description: 'the sidecar image', default: INJECT_DEFAULTS.image },
      { name: 'config-map', value: '<name>', description: 'the ConfigMap holding the mesh config', default: INJECT_DEFAULTS.configMap },
      { name: 'identity-secret-prefix', value: '<prefix>', description: 'Secrets named <prefix><service account> hold the workload certificates', default: INJECT_DEFAULTS.identitySecretPrefix },
      { name: 'namespace', short: 'n', value: '<ns>', description: 'namespace of manifests that name none', default: 'default' },
      { name: 'cluster-domain', value: '<domain>', description: 'Kubernetes cluster domain', default: 'cluster.local' },
      { name: 'mesh-output', value: '<file>', description: 'write the mesh resources there instead of after the manifests' },
    ],
    example: 'meshgate inject -f deployment.yaml > injected.yaml',
    load: async () => (await import('./inject.js')).injectCommand,
  },
  {
    name: 'version',
    summary: 'prints the version (also `meshgate --version`)',
    options: [],
    example: 'meshgate version',
    load: async () => (await import('./commands.js')).versionCommand,
  },
];

export function findCommand(words: readonly string[]): { spec: CommandSpec; rest: readonly string[] } | undefined {
  for (const spec of COMMANDS) {
    const parts = spec.name.split(' ');
    if (parts.every((part, index) => words[index] === part)) return { spec, rest: words.slice(parts.length) };
  }
  return undefined;
}

/** The commands whose first word is `word` (`ca` → `ca init`, `ca issue`). */
export function commandGroup(word: string): CommandSpec[] {
  return COMMANDS.filter((spec) => spec.name.split(' ')[0] === word);
}

function optionUsage(option: OptionSpec): string {
  const flag = option.short === undefined ? `--${option.name}` : `-${option.short}`;
  const text = option.value === undefined ? flag : `${flag} ${option.value}`;
  const repeated = option.multiple === true ? `${text}...` : text;
  return option.required === true ? repeated : `[${repeated}]`;
}

export function synopsis(spec: CommandSpec): string {
  return [`meshgate ${spec.name}`, ...spec.options.map(optionUsage)].join(' ');
}

export const EXIT_CODES_LINE = 'Exit codes: 0 success, 1 invalid configuration, 2 usage error.';

/** `meshgate --help`. */
export function generalUsage(): string {
  return [
    'meshgate — an edge API gateway that is also a service mesh',
    '',
    'Usage:',
    ...COMMANDS.map((spec) => `  ${synopsis(spec)}`),
    '',
    'Run `meshgate <command> --help` for a command\'s options and an example.',
    EXIT_CODES_LINE,
    '',
  ].join('\n');
}

/** `meshgate <command> --help`, and what follows a usage error of that command. */
export function commandUsage(spec: CommandSpec): string {
  const rows = spec.options.map((option) => {
    const names = [...(option.short === undefined ? [] : [`-${option.short}`]), `--${option.name}`].join(', ');
    const left = option.value === undefined ? names : `${names} ${option.value}`;
    const notes = [option.required === true ? 'required' : undefined, option.multiple === true ? 'repeatable' : undefined, option.default === undefined ? undefined : `default ${option.default}`]
      .filter((note) => note !== undefined)
      .join(', ');
    return { left, right: notes === '' ? option.description : `${option.description} (${notes})` };
  });
  const width = Math.max(0, ...rows.map((row) => row.left.length));
  return [
    `meshgate ${spec.name} — ${spec.summary}`,
    '',
    'Usage:',
    `  ${synopsis(spec)}`,
    '',
    ...(rows.length === 0 ? [] : ['Options:', ...rows.map((row) => `  ${row.left.padEnd(width)}  ${row.right}`), '']),
    'Example:',
    `  ${spec.example}`,
    '',
    EXIT_CODES_LINE,
    '',
  ].join('\n');
}

function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The README's CLI table (between the `cli-table` markers), checked by a test. */
export function readmeCliTable(): string {
  return [
    '| command | what it does |',
    '|---|---|',
    ...COMMANDS.map((spec) => `| \`${markdownCell(synopsis(spec))}\` | ${markdownCell(spec.summary)} |`),
    '',
    `${EXIT_CODES_LINE} \`meshgate <command> --help\` lists a command's options with an example.`,
  ].join('\n');
}
