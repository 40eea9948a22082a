import { LthError } from '../core/errors.js';
import type { Schema } from '../core/hparams.js';
import { writeReport } from '../report/index.js';
import { helpText, parseArgs } from './args.js';

const REPORT_SCHEMA = {
  out: { type: 'string', help: 'directory for report.html and the PNG figures (default: the run directory)' },
  compare: { type: 'list', help: 'other run directories to overlay, labelled by their hyperparameters (e.g. one-shot runs), comma-separated' },
} as const satisfies Schema;

const USAGE = `Usage: lth report <run-dir> [--out DIR] [--compare RUN2,RUN3,...]

Writes a self-contained report.html (inline SVG figures, tables of every number,
the hyperparameters) and one PNG per figure. A run still in progress can be
reported: unfinished levels are marked. Run directories are <root>/<hash> (lth ls).`;

/** `lth report`: parses its flags, writes the report, prints where it went. */
export async function cmdReport(argv: string[]): Promise<void> {
  const { values, positional, common } = parseArgs(argv, REPORT_SCHEMA, {}, true);
  if (common.help) {
    console.log(helpText(USAGE, REPORT_SCHEMA));
    return;
  }
  if (positional.length !== 1) throw new LthError(`report: expected one run directory, got ${positional.length ? positional.join(' ') : 'none'}. ${USAGE.split('\n')[0]}`);
  const compare = values.compare as string[] | undefined;
  if (compare !== undefined && compare.length === 0) throw new LthError('report: --compare names no run directory; give the runs to compare, comma-separated');
  const r = await writeReport(positional[0], { outDir: values.out as string | undefined, compare: compare ?? [] });
  for (const w of r.warnings) process.stderr.write(`lth: warning: ${w}\n`);
  if (common.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  console.log(`wrote ${r.html}${r.complete ? '' : ' (run in progress: unfinished levels are marked)'}`);
  for (const p of r.pngs) console.log(`      ${p}`);
}
