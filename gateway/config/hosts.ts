/** Host name checks shared by the validators (docs/routing.md#conventions). */

const LABEL = /^[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?$/i;

/** FQDN, short name, or `*.suffix`; `*` alone only when `allowStar`. */
export function hostProblem(host: string, allowStar: boolean): string | null {
  if (host === '') return 'host must not be empty';
  if (host === '*') return allowStar ? null : 'a bare "*" is not allowed here';
  const name = host.startsWith('*.') ? host.slice(2) : host;
  if (name.includes('*')) return 'only a single leading "*." wildcard is allowed';
  if (name.length > 253) return 'host is longer than 253 characters';
  const labels = name.split('.');
  if (labels[labels.length - 1] === '') labels.pop();
  for (const label of labels) {
    if (label.length > 63 || !LABEL.test(label)) return `"${label}" is not a valid DNS label`;
  }
  return null;
}

/** Whether `pattern` (exact or `*.suffix` / `*`) covers `host`; case-insensitive. */
export function hostCovers(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase();
  if (p === '*' || p === h) return true;
  return p.startsWith('*.') && h.endsWith(p.slice(1)) && h.length > p.length - 1;
}
