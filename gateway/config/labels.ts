/** Kubernetes label selection (`matchLabels`, a Gateway's or Sidecar's `selector`): every selector label, with its value, is among the labels. */
export function labelsMatch(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector)) {
    if (labels[key] !== value) return false;
  }
  return true;
}
