/** The authz plugin's series, `meshgate_authz_decisions_total`, in the process registry the metrics plugin exposes. */
import { BoundedCounter } from '../../gateway/metrics/registry.js';
import type { PreparedCounter } from '../../gateway/metrics/registry.js';
import type { AuthzAction } from './compiled-policy.js';

export type AuthzResult = 'allowed' | 'denied';

const authzDecisions = new BoundedCounter({
  name: 'meshgate_authz_decisions_total',
  help: 'AuthorizationPolicy decisions by deciding policy (`<ns>/<name>` or `none`), action and result.',
  labelNames: ['policy', 'action', 'result'],
});

/** `policy` is the `<namespace>/<name>` that decided, or `none` when no policy matched. */
export function recordAuthzDecision(policy: string, action: AuthzAction, result: AuthzResult): void {
  authzDecisions.inc({ policy, action, result });
}

/** The series `recordAuthzDecision` counts, kept by a caller whose decisions recur (label values from config, not from requests). */
export function authzDecisionSeries(policy: string, action: AuthzAction, result: AuthzResult): PreparedCounter {
  return authzDecisions.series({ policy, action, result });
}
