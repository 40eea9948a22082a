import { createHash } from 'node:crypto';
import { LthError } from './errors.js';

/**
 * Typed hyperparameter schemas. Every field has a type, help text and a default
 * that changes nothing; CLI flags are generated from them, and the canonical form
 * leaves defaults out, so adding a field never renames existing runs.
 */
export type FieldType = 'string' | 'number' | 'integer' | 'boolean' | 'list';

export interface Field {
  readonly type: FieldType;
  readonly help: string;
  /** `undefined` means "the model's (or dataset's) own default". */
  readonly default?: string | number | boolean | readonly string[];
  readonly choices?: readonly string[];
  /** Flag name when it is not the kebab-case of the field name. */
  readonly flag?: string;
  /** Other accepted flag names. */
  readonly aliases?: readonly string[];
}

export type Schema = Readonly<Record<string, Field>>;
export type Values = Record<string, string | number | boolean | string[] | undefined>;

export function flagName(key: string, field: Field): string {
  return field.flag ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Converts a flag's text to the field's type, with an error that names the flag. */
export function parseValue(key: string, field: Field, text: string): string | number | boolean | string[] {
  const flag = `--${flagName(key, field)}`;
  switch (field.type) {
    case 'number': {
      const v = Number(text);
      // Decimal only: Number() would also take '0x10' (16) or '0b11'.
      if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(text) || !Number.isFinite(v)) throw new LthError(`${flag}: expected a number, got '${text}'`);
      return v;
    }
    case 'integer': {
      const v = Number(text);
      if (!/^-?\d+$/.test(text.trim())) throw new LthError(`${flag}: expected an integer, got '${text}'`);
      return v;
    }
    case 'boolean':
      if (text === 'true' || text === '') return true;
      if (text === 'false') return false;
      throw new LthError(`${flag}: expected true or false, got '${text}'`);
    case 'list':
      return listOf(text);
    case 'string':
      if (field.choices && !field.choices.includes(text)) {
        throw new LthError(`${flag}: expected one of ${field.choices.join(', ')}, got '${text}'`);
      }
      return text;
  }
}

/** A list field's value written as one string: comma-separated, blanks dropped ('reinit, random_prune'). */
export function listOf(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * The canonical form: fields equal to their default (the schema's or the given
 * resolved ones) are left out; keys sorted.
 */
export function canonical(values: Values, defaults: Values): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(values).sort()) {
    const v = values[key];
    if (v === undefined) continue;
    if (JSON.stringify(v) === JSON.stringify(defaults[key])) continue;
    out[key] = v;
  }
  return out;
}

/** A short stable name for a canonical object: 16 hex digits of its SHA-256. */
export function hashOf(obj: unknown): string {
  return createHash('sha256').update(stableStringify(obj)).digest('hex').slice(0, 16);
}

export function stableStringify(obj: unknown): string {
  if (Array.isArray(obj)) return `[${obj.map(stableStringify).join(',')}]`;
  if (obj && typeof obj === 'object') {
    const keys = Object.keys(obj as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify((obj as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(obj);
}

/**
 * Values given to a library call (resolveTraining, resolveLottery) as its schema reads
 * them: an unknown key is an error naming the nearest known one (a typo would otherwise
 * silently leave that hyperparameter at its default), and a list may be given as one
 * comma-separated string, as on the command line.
 */
export function schemaValues(v: Values, schema: Schema, what: string): Values {
  const out: Values = {};
  for (const [k, x] of Object.entries(v)) {
    const field = schema[k];
    if (!field) {
      if (x === undefined) continue;
      const near = nearestKey(k, schema);
      throw new LthError(`${what}: unknown hyperparameter '${k}'${near ? ` (did you mean '${near}'?)` : ''}. Known: ${Object.keys(schema).join(', ')}`);
    }
    if (field.type === 'list' && typeof x === 'string') out[k] = listOf(x);
    else if (field.type === 'list' && x !== undefined && !(Array.isArray(x) && x.every((e) => typeof e === 'string'))) {
      throw new LthError(`${what}: ${k} must be a list of strings (or one comma-separated string), got ${JSON.stringify(x)}`);
    } else out[k] = x;
  }
  return out;
}

/** The schema key a mistyped key most likely meant: the same but for case, dashes and underscores, or its flag name, or at most two letters off. */
function nearestKey(key: string, schema: Schema): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const names = (k: string) => [k, flagName(k, schema[k]), ...(schema[k].aliases ?? [])].map(plain);
  const keys = Object.keys(schema);
  return keys.find((k) => names(k).includes(plain(key))) ?? keys.find((k) => names(k).some((n) => editDistance(n, plain(key)) <= 2));
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}
