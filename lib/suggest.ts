// "Did you mean …?": the closest of a few known words to a misspelt one. Pure.

/** Edit distance: insertions, deletions, substitutions and swaps of two neighbours, each 1. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row[j] = d;
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate closest to `word`, if it is close enough to be a likely typo:
 * at most 2 edits, and fewer than half the word's length, or the word cut
 * short or run on. Ties go to the first.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= 2 && bestDistance * 2 < Math.max(word.length, 2)) return best;
  // A word cut short or run on (ttl for ttlMs): the candidate it begins, or that begins it.
  const w = word.toLowerCase();
  if (w.length < 3) return undefined;
  for (const c of candidates) if (c.toLowerCase().startsWith(w) || w.startsWith(c.toLowerCase())) return c;
  return undefined;
}
