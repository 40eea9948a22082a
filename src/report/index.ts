import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { writeFileAtomic } from '../store/atomic.js';
import { prefixIds, renderSvg, svgToPng, systemFontsMissing } from './charts.js';
import { accuracyFigure, compareCostFigures, compareFigures, compareGroups, costFigures, earlyBirdFigure, earlyStopFigures, maskFigure, stabilityFigures, type Figure } from './figures.js';
import { page, type PageFigure } from './html.js';
import { loadRun, runLabel, type RunData } from './run-data.js';

export { loadRun, runLabel, parseInstability, parseEarlyBird, parseFlops, hasCosts, relativeToDensity, type RunData, type Curve, type MaskGrids, type StageStatus, type StabilityAnalysis, type StageCost, type EarlyBirdSearch } from './run-data.js';
export { renderSvg, svgToPng, PAPER_TICKS } from './charts.js';
export {
  seriesStyle, stabilityLevels, costSeries, compareCostSeries, earlyBirdLevels, ticketCostSamples, ticketMethod,
  type Figure, type StabilityLevel, type CostEntry, type CostSample, type CostSeriesData, type EarlyBirdLevel,
} from './figures.js';

import { REPORT_FILES, isReportFile } from './files.js';

export { REPORT_FILES };

export interface ReportOptions {
  /** Where report.html and the PNGs go (default: the run directory). */
  outDir?: string;
  /** Other run directories to overlay on the primary one (iterative vs one-shot...). */
  compare?: string[];
  /**
   * The compared runs' series names, the primary run's first (a sweep's axis values);
   * default: each run's hyperparameters that set it apart (runLabel).
   */
  labels?: string[];
}

export interface ReportResult {
  /** Path of report.html. */
  html: string;
  /** Paths of the PNG figures, in the order they appear in the report. */
  pngs: string[];
  /** Figure ids, in the same order. */
  figures: string[];
  /** False while some stage of the run has not finished. */
  complete: boolean;
  /** Things the user should know (e.g. no fonts for the PNGs). */
  warnings: string[];
}

/** The figures of a run (and the runs compared with it), as Vega specs. */
export function buildFigures(run: RunData, compared: RunData[] = [], labels?: string[]): Figure[] {
  const figures = [accuracyFigure(run), ...earlyStopFigures(run), ...stabilityFigures(run), ...costFigures(run)];
  const earlyBird = earlyBirdFigure(run);
  if (earlyBird) figures.push(earlyBird);
  if (compared.length) {
    const all = [run, ...compared];
    const groups = compareGroups(all, labels);
    figures.push(...compareFigures(groups), ...compareCostFigures(groups));
    // The early-bird searches of the compared runs, each under its label.
    for (const [i, r] of compared.entries()) {
      const f = earlyBirdFigure(r, { id: `compare-early-bird-distance-${i + 1}`, label: labels?.[i + 1] ?? runLabel(r, all.filter((o) => o !== r)) });
      if (f) figures.push(f);
    }
  }
  const mask = maskFigure(run);
  if (mask) figures.push(mask);
  return figures;
}

/**
 * Writes `report.html` (self-contained: inline SVG, no scripts, no network) and one
 * PNG per figure for the lottery run in `runDir`. Reads the store only, so it works
 * on a run that is still in progress: unfinished stages are marked as such.
 */
export async function writeReport(runDir: string, opts: ReportOptions | string = {}): Promise<ReportResult> {
  const o: ReportOptions = typeof opts === 'string' ? { outDir: opts } : opts;
  const run = loadRun(runDir);
  // The same directory however it is named (a symbolic link, a relative path).
  const where = (d: string) => (fs.existsSync(d) ? fs.realpathSync(d) : path.resolve(d));
  const seen = new Set<string>();
  const compared = (o.compare ?? []).map((d) => {
    if (d.trim() === '') throw new LthError('report: --compare names an empty run directory; give the runs to compare, comma-separated');
    if (where(d) === where(runDir)) throw new LthError(`report: --compare ${d} is the run being reported`);
    if (seen.has(where(d))) throw new LthError(`report: --compare names ${d} twice`);
    seen.add(where(d));
    return loadRun(d);
  });
  const outDir = o.outDir ?? runDir;
  fs.mkdirSync(outDir, { recursive: true });
  if (!fs.statSync(outDir).isDirectory()) throw new LthError(`report: --out ${outDir} is not a directory`);

  if (o.labels && o.labels.length !== 1 + compared.length) throw new LthError(`report: ${o.labels.length} labels for ${1 + compared.length} runs`);
  const figures = buildFigures(run, compared, o.labels);
  const pageFigures: PageFigure[] = [];
  const pngs: string[] = [];
  for (const [i, f] of figures.entries()) {
    const svg = await renderSvg(f.spec);
    const png = path.join(outDir, REPORT_FILES.png(f.id));
    writeFileAtomic(png, svgToPng(svg));
    pngs.push(png);
    pageFigures.push({ id: f.id, heading: f.heading, caption: f.caption, svg: prefixIds(svg.replace(/^<\?xml[^>]*>\s*/, ''), `f${i}`), png: path.basename(png) });
  }
  const groups = compared.length ? compareGroups([run, ...compared], o.labels) : null;
  const html = path.join(outDir, REPORT_FILES.html);
  writeFileAtomic(html, page(run, pageFigures, groups));
  // Figures an earlier report wrote here and this one does not (a sweep of more runs, a run
  // compared before): left, they would pass for this report's.
  const written = new Set(pngs.map((p) => path.basename(p)));
  for (const name of fs.readdirSync(outDir)) {
    if (isReportFile(name) && name !== REPORT_FILES.html && !written.has(name)) fs.rmSync(path.join(outDir, name), { force: true });
  }
  const warnings: string[] = [];
  const fonts = systemFontsMissing();
  if (fonts) warnings.push(fonts);
  if (run.ignoredAnalyses.length) {
    warnings.push(`${run.ignoredAnalyses.length} finished stability stage(s) without an instability analysis the report understands, left out of the stability figures: ${run.ignoredAnalyses.join(', ')}`);
  }
  if (run.damaged.length) {
    warnings.push(`${run.damaged.length} finished stage(s) changed since they finished, left out as unfinished ('lth verify ${run.dir} --repair' redoes them): ${run.damaged.join('; ')}`);
  }
  return { html, pngs, figures: figures.map((f) => f.id), complete: run.summary.complete, warnings };
}
