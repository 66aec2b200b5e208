/**
 * "Did you mean …?" for misspelt field names, kinds, enum values and references: the candidate
 * closest by Damerau–Levenshtein distance (optimal string alignment: a swap of two neighbours counts
 * as one edit, so `wieght` is one edit from `weight`), compared without case. Only close candidates
 * are offered: a wild guess is worse than none.
 */

function editDistance(a: string, b: string): number {
  // Three rows suffice: the transposition step looks two rows back.
  let previous2: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_unused, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, (previous2[j - 2] ?? 0) + 1);
      current.push(best);
    }
    previous2 = previous;
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The closest candidate within a third of the word's length (at most 3 edits), or undefined. Words under
 * four characters only match by case (`v3` is not a misspelt `v1`).
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  const limit = word.length < 4 ? 0 : Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** ` (did you mean "x"?)`, or '' when nothing is close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const match = closestMatch(word, candidates);
  return match === undefined ? '' : ` (did you mean "${match}"?)`;
}
