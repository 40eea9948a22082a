import { LthError } from '../core/errors.js';
import { flagName, parseValue, type Schema, type Values } from '../core/hparams.js';

/** Flags every command takes besides its schema's. */
export interface CommonFlags {
  json: boolean;
  help: boolean;
}

/**
 * Parses `--flag value`, `--flag=value` and bare boolean flags against a schema (`-h` is
 * `--help`). Unknown flags are errors that list the known ones; so is an argument that is
 * no flag's value, unless the command takes operands (`operands`: a run directory, a file),
 * which it then checks itself.
 */
export function parseArgs(argv: string[], schema: Schema, extra: Schema = {}, operands = false): { values: Values; positional: string[]; common: CommonFlags } {
  const all: Schema = { ...schema, ...extra, json: { type: 'boolean', help: 'print one JSON object as the last stdout line; no progress', default: false }, help: { type: 'boolean', help: 'show this help', default: false } };
  const byFlag = new Map(Object.entries(all).flatMap(([k, f]) => [flagName(k, f), ...(f.aliases ?? [])].map((name) => [name, k] as const)));
  const values: Values = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h') {
      values.help = true;
      continue;
    }
    if (/^-[^-]/.test(arg)) throw new LthError(`unknown flag ${arg}: flags start with -- (lth --help lists the commands, lth <command> --help their flags)`);
    if (!arg.startsWith('--')) {
      if (!operands) {
        // After a flag's value, most likely the next item of a list given with spaces.
        const list = i > 1 && !argv[i - 1].startsWith('-') && all[byFlag.get(argv[i - 2].slice(2)) ?? '']?.type === 'list';
        throw new LthError(`unexpected argument '${arg}': this command takes --flags only${list ? `; a list is one value with commas: ${argv[i - 2]} ${argv[i - 1]},${arg}` : ''}`);
      }
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const key = byFlag.get(name);
    if (!key) throw new LthError(`unknown flag --${name}. Known: ${[...byFlag.keys()].map((f) => `--${f}`).join(', ')}`);
    const field = all[key];
    let text: string;
    if (eq >= 0) text = arg.slice(eq + 1);
    else if (field.type === 'boolean') text = argv[i + 1] === 'true' || argv[i + 1] === 'false' ? argv[++i] : 'true';
    else {
      if (i + 1 >= argv.length) throw new LthError(`--${name} needs a value`);
      text = argv[++i];
    }
    values[key] = parseValue(key, field, text);
  }
  const common = { json: values.json === true, help: values.help === true };
  delete values.json;
  delete values.help;
  return { values, positional, common };
}

export function helpText(usage: string, schema: Schema): string {
  const lines = [usage, '', 'Options:'];
  const width = Math.max(18, ...Object.entries(schema).map(([key, f]) => flagName(key, f).length));
  for (const [key, f] of Object.entries(schema)) {
    const def = f.default === undefined ? '' : ` (default: ${Array.isArray(f.default) ? f.default.join(',') : String(f.default)})`;
    const also = f.aliases?.length ? ` (also ${f.aliases.map((a) => `--${a}`).join(', ')})` : '';
    lines.push(`  --${flagName(key, f).padEnd(width)} ${f.help}${def}${also}`);
  }
  lines.push(`  --${'json'.padEnd(width)} print one JSON object as the last stdout line; no progress`);
  return lines.join('\n');
}
