/** CLI usage text and the usage-error type (exit code 2), kept apart so every command shares one wording. */
export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}

export const USAGE = `meshgate — an edge API gateway that is also a service mesh

Usage:
  meshgate run -c <file|dir> [--mode ingress|sidecar] [--workload NAME] [--admin-address HOST:PORT] [--status-address HOST:PORT] [--metrics-address HOST:PORT] [--log-level LEVEL]
  meshgate validate -c <file|dir> [--output text|json] [--strict] [--mode ingress|sidecar] [--workload NAME]
  meshgate explain -c <file|dir> --method M --host H --path P [--workload NAME] [--header k=v]... [--principal P] [--claims JSON]
  meshgate ca init --dir DIR [--trust-domain TD]
  meshgate ca issue --dir DIR --namespace NS --service-account SA [--out DIR]
  meshgate inject [-f FILE|-] [--image IMAGE] [--config-map NAME] [--identity-secret-prefix P] [--namespace NS] [--mesh-output FILE]
  meshgate demo [--dir DIR]
  meshgate version

Exit codes: 0 success, 1 invalid configuration, 2 usage error.
`;
