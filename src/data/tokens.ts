/**
 * Vocabularies and encodings for text data sets: words or characters to integer ids,
 * built from a training split only, deterministically (by count, ties by the token's
 * code points), so the same split always gives the same ids.
 */

/** Id 0 pads a short sequence; id 1 stands for any token outside the vocabulary. */
export const PAD = 0;
export const UNK = 1;

/** The words of a text: lowercase runs of letters (with an inner apostrophe) or of digits. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?|[0-9]+/g) ?? [];
}

const byCode = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The `size - reserved` most frequent tokens of `counts`, by count then by code points: the
 * token at position i gets id reserved + i. Fewer when there are fewer tokens (ids up to
 * `size` then stay unused).
 */
export function topTokens(counts: ReadonlyMap<string, number>, size: number, reserved: number): Map<string, number> {
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || byCode(a[0], b[0])).slice(0, Math.max(0, size - reserved));
  return new Map(ranked.map(([t], i) => [t, reserved + i]));
}

/** Counts of the tokens of some texts. */
export function countTokens(texts: Iterable<readonly string[]>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const tokens of texts) for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

/**
 * `tokens` as ids into out[0..length): the first `length` tokens, then PAD; a token outside
 * `vocab` is UNK. Ids are written as floats (exact small integers): what models are fed.
 */
export function encodeFixed(tokens: readonly string[], vocab: ReadonlyMap<string, number>, out: Float32Array): void {
  const n = Math.min(tokens.length, out.length);
  for (let i = 0; i < n; i++) out[i] = vocab.get(tokens[i]) ?? UNK;
  out.fill(PAD, n);
}
