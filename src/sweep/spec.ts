import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { LthError } from '../core/errors.js';
import { flagName, hashOf, listOf, type Field, type Values } from '../core/hparams.js';
import { LOTTERY_SCHEMA, resolveLottery, type LotteryHparams } from '../lottery/hparams.js';
import { experimentOf } from '../lottery/stage.js';

/** The most runs one sweep may expand into. */
export const MAX_SWEEP_RUNS = 1000;

/**
 * A sweep as its file gives it: the lottery hyperparameters every run shares (`base`), the
 * axes whose cross product gives the runs, and optionally the replicates of every run.
 * Keys are LOTTERY_SCHEMA's camelCase names; values are what the flags take (numbers,
 * strings such as '500it', lists as arrays or comma-separated strings).
 */
export interface SweepSpec {
  base?: Record<string, unknown>;
  axes: Record<string, unknown[]>;
  /** Replicates of every run (seeds seed..seed+N-1 inside one run); the same as base.replicates. */
  replicates?: number;
}

/** One run of a sweep: one combination of the axes' values. */
export interface SweepRun {
  /** The axis values, in the file's axis order: 'rate=0.1 rewindStep=500it'. */
  label: string;
  /** The axis values of this run, by key, as resolveLottery took them. */
  values: Values;
  hparams: LotteryHparams;
  /** The run's name (its hash) and directory, <root>/<hash> (experimentOf). */
  hash: string;
  runDir: string;
}

/** A sweep checked and expanded: every run resolved, nothing run. */
export interface ResolvedSweep {
  /** 16 hex digits naming the sweep's content as parsed (not its formatting, nor where its runs live). */
  hash: string;
  /** The axes' keys in the file's order. */
  axes: string[];
  /** The shared values and each axis's values, as resolveLottery takes them. */
  base: Values;
  axisValues: Record<string, Values[string][]>;
  /** Every combination, the first axis varying slowest. */
  runs: SweepRun[];
}

export interface ExpandOptions {
  /** Where the runs live; wins over base.root (default: LOTTERY_SCHEMA's, ./lth-runs). */
  root?: string;
  /** What the spec came from (a file), named in every error. */
  source?: string;
}

const TOP_KEYS = ['base', 'axes', 'replicates'];
const SCHEMA: Readonly<Record<string, Field>> = LOTTERY_SCHEMA;
const KEYS = Object.keys(SCHEMA);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** 'a.json:3:7' from a parse error's position in `text`. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, col: lines[lines.length - 1].length + 1 };
}

/**
 * Reads a sweep file: JSON (.json, by JSON.parse) or YAML (.yaml, .yml). A file that does
 * not parse is an LthError naming the file and the line. The content is checked by
 * expandSweep, not here.
 */
export function readSweepFile(file: string): unknown {
  const ext = path.extname(file).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext)) throw new LthError(`sweep: ${file}: expected a .json, .yaml or .yml file (the extension chooses the parser)`);
  if (!fs.existsSync(file)) throw new LthError(`sweep: ${file} does not exist`);
  if (!fs.statSync(file).isFile()) throw new LthError(`sweep: ${file} is not a file`);
  const text = fs.readFileSync(file, 'utf8');
  if (ext === '.json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      const message = (e as Error).message;
      const at = /at position (\d+)/.exec(message);
      const { line, col } = lineCol(text, at ? Number(at[1]) : text.length);
      throw new LthError(`sweep: ${file}:${line}:${col}: not valid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`);
    }
    // JSON.parse keeps the last of a key given twice; valid JSON is YAML, whose parser says so.
    try {
      parseYaml(text, { prettyErrors: false, uniqueKeys: true });
    } catch (e) {
      // Only that: JSON that the YAML parser reads otherwise is still the JSON it is.
      if (e instanceof YAMLParseError && /unique/i.test(e.message)) {
        const pos = e.linePos?.[0] ?? lineCol(text, e.pos[0]);
        throw new LthError(`sweep: ${file}:${pos.line}:${pos.col}: a key is given twice in the same object`);
      }
    }
    return value;
  }
  try {
    return parseYaml(text, { prettyErrors: false, uniqueKeys: true });
  } catch (e) {
    if (!(e instanceof YAMLParseError)) throw e;
    const pos = e.linePos?.[0] ?? lineCol(text, e.pos[0]);
    // The parser's advice for a file of several documents names its own API.
    if (/multiple documents|parseAllDocuments/i.test(e.message)) throw new LthError(`sweep: ${file}:${pos.line}:${pos.col}: a sweep file holds one YAML document (one base and its axes); this one has more ('---' starts another)`);
    throw new LthError(`sweep: ${file}:${pos.line}:${pos.col}: not valid YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`);
  }
}

/** An unknown key's error: the known ones listed, and the camelCase name of a flag name. */
function unknownKey(where: string, key: string): LthError {
  const byFlag = KEYS.find((k) => flagName(k, SCHEMA[k]) === key || (SCHEMA[k].aliases ?? []).includes(key));
  return new LthError(`${where}: unknown key '${key}'${byFlag ? ` (the flag --${key} is the key '${byFlag}')` : ''}. Known: ${KEYS.join(', ')}`);
}

/** A value of the file as resolveLottery takes it (what parseArgs makes of the flag), or an error naming `where`. */
function coerce(where: string, key: string, v: unknown): Values[string] {
  const f = SCHEMA[key];
  // JSON would write NaN and the infinities (YAML's .nan, .inf) as null.
  const shown = typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v) ?? String(v);
  const bad = (what: string) => new LthError(`${where}: expected ${what}, got ${shown}`);
  if (v === null || v === undefined) throw bad('a value');
  switch (f.type) {
    case 'number':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
      throw bad('a number');
    case 'integer':
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
      throw bad('an integer');
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'false') return v === 'true';
      throw bad('true or false');
    case 'list':
      if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.map((x) => String(x).trim());
      if (typeof v === 'string') return listOf(v);
      throw bad('a list of names or numbers, e.g. [a, b]');
    case 'string': {
      if (typeof v !== 'string' && typeof v !== 'number') throw bad('a string');
      const s = String(v);
      if (f.choices && !f.choices.includes(s)) throw bad(`one of ${f.choices.join(', ')}`);
      return s;
    }
  }
}

/** How a value reads in a run's label. */
export function formatValue(v: Values[string]): string {
  return Array.isArray(v) ? (v.length ? v.join(',') : '[]') : String(v);
}

/** resolveLottery's messages name flags (--rewind-step); a sweep file names keys (rewindStep). */
function flagsToKeys(message: string): string {
  const byFlag = new Map(KEYS.flatMap((k) => [flagName(k, SCHEMA[k]), ...(SCHEMA[k].aliases ?? [])].map((n) => [n, k] as const)));
  return message.replace(/--([a-z][a-z0-9-]*)/g, (all, name: string) => byFlag.get(name) ?? all);
}

/** Checks the file's shape (top-level keys, base, axes) and returns its values as resolveLottery takes them. */
function checkSpec(spec: unknown, where: string): { base: Values; axes: Array<[string, Values[string][]]> } {
  if (!isObject(spec)) throw new LthError(`${where}: expected an object with 'base' and 'axes', e.g. { base: { steps: 3000it, levels: 5 }, axes: { rate: [0.1, 0.2] } }`);
  for (const k of Object.keys(spec)) {
    if (k === 'seeds') throw new LthError(`${where}: 'seeds' is not a sweep key: for seed replicates give 'replicates: N' (seeds seed..seed+N-1 inside each run, averaged in the report), or a 'seed' axis (one run per seed, a series each)`);
    if (!TOP_KEYS.includes(k)) throw new LthError(`${where}: unknown top-level key '${k}'. Known: ${TOP_KEYS.join(', ')}`);
  }
  const rawBase = spec.base ?? {};
  if (!isObject(rawBase)) throw new LthError(`${where}: 'base' must be a mapping of hyperparameters, e.g. { steps: 3000it, levels: 5 }`);
  const base: Values = {};
  for (const [k, v] of Object.entries(rawBase)) {
    if (!KEYS.includes(k)) throw unknownKey(`${where}: base`, k);
    base[k] = coerce(`${where}: base.${k}`, k, v);
  }
  if (spec.replicates !== undefined) {
    if (base.replicates !== undefined) throw new LthError(`${where}: replicates is given twice (top level and base): give one`);
    base.replicates = coerce(`${where}: replicates`, 'replicates', spec.replicates);
  }
  if (!isObject(spec.axes) || Object.keys(spec.axes).length === 0) {
    throw new LthError(`${where}: 'axes' must map at least one hyperparameter to its values, e.g. { rate: [0.1, 0.2], rewindStep: [0it, 500it] } (for one run: lth lottery)`);
  }
  const axes: Array<[string, Values[string][]]> = [];
  for (const [k, vs] of Object.entries(spec.axes)) {
    if (!KEYS.includes(k)) throw unknownKey(`${where}: axes`, k);
    if (k === 'root') throw new LthError(`${where}: axes.root: root is where the runs live, not a hyperparameter: give it in base or with --root`);
    if (k in base) throw new LthError(`${where}: ${k} is both in base and an axis: give it in one place`);
    if (!Array.isArray(vs)) throw new LthError(`${where}: axes.${k}: expected a list of values, e.g. ${k}: [a, b], got ${JSON.stringify(vs)}`);
    if (vs.length === 0) throw new LthError(`${where}: axes.${k} is empty: an axis needs at least one value`);
    const values = vs.map((v, i) => coerce(`${where}: axes.${k}[${i}]`, k, v));
    const seen = new Map<string, number>();
    values.forEach((v, i) => {
      const j = seen.get(JSON.stringify(v));
      if (j !== undefined) throw new LthError(`${where}: axes.${k} gives ${formatValue(v)} twice (values ${j + 1} and ${i + 1})`);
      seen.set(JSON.stringify(v), i);
    });
    axes.push([k, values]);
  }
  const total = axes.reduce((n, [, vs]) => n * vs.length, 1);
  if (total > MAX_SWEEP_RUNS) {
    throw new LthError(`${where}: the axes give ${total} runs (${axes.map(([k, vs]) => `${k}: ${vs.length}`).join(' x ')}); a sweep may have at most ${MAX_SWEEP_RUNS}`);
  }
  return { base, axes };
}

/**
 * Checks a sweep and expands it into its runs, resolving every combination with
 * resolveLottery before anything runs: a bad value is an LthError naming the combination
 * and the key. The cross product is in the file's axis order, the first axis varying
 * slowest. Two combinations that are the same run (they differ only in what does not
 * name a run, e.g. branches or replicates) are an error.
 */
export function resolveSweep(spec: unknown, opts: ExpandOptions = {}): ResolvedSweep {
  const where = opts.source ? `sweep: ${opts.source}` : 'sweep';
  const { base, axes } = checkSpec(spec, where);
  const root = opts.root ?? (base.root as string | undefined) ?? LOTTERY_SCHEMA.root.default;
  // Where runs and data live and how stages checkpoint do not name the sweep, as they do not name a run.
  const { root: _root, dataDir: _dataDir, checkpointEvery: _checkpointEvery, ...content } = base;
  const hash = hashOf({ base: content, axes: axes.map(([k, vs]) => [k, vs]) });

  let combos: Values[] = [{}];
  for (const [k, vs] of axes) combos = combos.flatMap((c) => vs.map((v) => ({ ...c, [k]: v })));
  const runs: SweepRun[] = [];
  const byDir = new Map<string, SweepRun>();
  for (const [i, values] of combos.entries()) {
    const label = axes.map(([k]) => `${k}=${formatValue(values[k])}`).join(' ');
    let hparams: LotteryHparams;
    try {
      hparams = resolveLottery({ ...base, ...values, root });
    } catch (e) {
      if (!(e instanceof LthError)) throw e;
      throw new LthError(`${where}: run ${i + 1} of ${combos.length} (${label}): ${flagsToKeys(e.message)}`);
    }
    const runDir = experimentOf(hparams).runDir, h = path.basename(runDir);
    const run: SweepRun = { label, values, hparams, hash: h, runDir };
    const same = byDir.get(run.runDir);
    if (same) {
      const differ = axes.map(([k]) => k).filter((k) => JSON.stringify(same.values[k]) !== JSON.stringify(values[k]));
      throw new LthError(`${where}: runs '${same.label}' and '${label}' are the same run (${h}): they differ only in ${differ.join(', ')}, which ${differ.length === 1 ? 'does' : 'do'} not name a run here (branches, replicates, levels without targetDensity, dataDir and checkpointEvery extend one run rather than make another, and two ways to write one value, such as a default given explicitly, are one run); give ${differ.length === 1 ? 'it' : 'them'} in base`);
    }
    byDir.set(run.runDir, run);
    runs.push(run);
  }
  return { hash, axes: axes.map(([k]) => k), base, axisValues: Object.fromEntries(axes), runs };
}

/** The runs of a sweep: resolveSweep's, with their labels, axis values and resolved hyperparameters. */
export function expandSweep(spec: unknown, opts: ExpandOptions = {}): SweepRun[] {
  return resolveSweep(spec, opts).runs;
}

/** Reads, checks and expands a sweep file (readSweepFile, then resolveSweep). */
export function loadSweep(file: string, opts: Omit<ExpandOptions, 'source'> = {}): ResolvedSweep {
  return resolveSweep(readSweepFile(file), { ...opts, source: file });
}
