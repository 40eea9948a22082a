import type * as vega from 'vega';
import type { Stats } from '../lottery/summary.js';
import { BRANCH_COLORS, BRANCH_DASHES, PALETTE, PAPER_TICKS, curvesChart, densityChart, heatmapGrid, pathChart, type Series } from './charts.js';
import { STABILITY_BRANCH, runLabel, stats, type Curve, type Metric, type RunData } from './run-data.js';

/** One figure of the report: its file name stem, heading, caption and Vega spec. */
export interface Figure {
  id: string;
  heading: string;
  caption: string;
  spec: vega.Spec;
}

/**
 * How a branch's series is drawn: its label, and a colour and dash by its place among the
 * run's branches (the ticket first, then hparams.json's order): twelve colours and seven
 * dashes, so every branch of a run looks different. Two branches with one label are told
 * apart by their names.
 */
export function seriesStyle(run: RunData, branch: string): { label: string; color: string; dash: number[] } {
  const order = [run.main, ...run.branches];
  const i = Math.max(0, order.indexOf(branch));
  const labelOf = (b: string) => run.labels[b] ?? b;
  const clash = order.some((b) => b !== branch && labelOf(b) === labelOf(branch));
  return { label: clash ? `${labelOf(branch)} (${branch})` : labelOf(branch), color: BRANCH_COLORS[i % BRANCH_COLORS.length], dash: BRANCH_DASHES[i % BRANCH_DASHES.length] };
}

export const pctLabel = (density: number) => `${(100 * density).toFixed(1)}%`;

function describe(run: RunData): string {
  const t = run.hparams.resolved.training;
  return `${t.model ?? '?'} on ${t.dataset ?? '?'}, ${t.steps ?? '?'} per level`;
}

function progressNote(run: RunData): string[] {
  if (run.summary.complete) return [];
  const done = run.stages.filter((s) => s.state === 'done').length;
  return [`run in progress: ${done} of ${run.stages.length} stages finished`];
}

/**
 * At most eight curves stay readable: with more levels, the ones nearest the
 * paper's ladder (100, 51.3, 21.1, 7.0, 3.6, 1.9) and the sparsest.
 */
export function pickCurves<T extends { density: number }>(curves: T[]): T[] {
  if (curves.length <= 8) return curves;
  const chosen = new Set<T>();
  for (const t of PAPER_TICKS) {
    let best: T | null = null;
    for (const c of curves) if (!best || Math.abs(Math.log(100 * c.density / t)) < Math.abs(Math.log(100 * best.density / t))) best = c;
    if (best && Math.abs(Math.log(100 * best.density / t)) < 0.25) chosen.add(best);
  }
  chosen.add(curves[0]);
  chosen.add(curves[curves.length - 1]);
  return curves.filter((c) => chosen.has(c));
}

export function curveName(c: Curve, all: Curve[]): string {
  const base = pctLabel(c.density);
  const clash = all.some((o) => o !== c && pctLabel(o.density) === base);
  return `${base}${clash ? ` (level ${c.level})` : ''}${c.partial ? ' (partial)' : ''}`;
}

export function accuracyFigure(run: RunData): Figure {
  const shown = pickCurves(run.curves);
  const series = shown.map((c, i) => ({
    name: curveName(c, shown), color: PALETTE[i % PALETTE.length], dash: c.partial ? [5, 3] : [],
    points: c.points.map((p) => ({ iteration: p.iteration, value: 100 * p.mean })),
  }));
  // Zoom in like the paper's Figure 3: the first evaluations (near chance) would flatten the rest.
  const all = shown.flatMap((c) => c.points);
  const last = all.length ? Math.max(...all.map((p) => p.iteration)) : 0;
  const later = all.filter((p) => p.iteration >= 0.1 * last && p.iteration > 0);
  const yMin = later.length ? Math.floor(100 * Math.min(...later.map((p) => p.mean)) * 2) / 2 : null;
  const partial = shown.filter((c) => c.partial);
  const note = [
    `Test accuracy of the winning ticket at each level during training (main/metrics.csv), mean over ${run.replicates === 1 ? 'the one replicate' : `the finished replicates (of ${run.replicates})`}.`,
    shown.length < run.curves.length ? `Showing ${shown.length} of ${run.curves.length} levels (nearest the paper's ladder); every level's curve is in the curve table below.` : '',
    yMin !== null ? `The y axis starts at ${yMin}%: the first ${Math.round(0.1 * last)} iterations, near chance, are cut off.` : '',
    partial.length ? `Dashed, "(partial)": levels still training, drawn from their partial metrics.csv.` : '',
  ].filter(Boolean).join(' ');
  return {
    id: 'accuracy-vs-iteration', heading: 'Test accuracy during training',
    caption: note,
    spec: curvesChart({ title: 'Test accuracy vs training iteration', subtitle: [describe(run), ...progressNote(run)], yTitle: 'Test accuracy (%)', yMin, series }),
  };
}

function seriesFrom(run: RunData, which: string, metric: Metric, scale: number): Series {
  const style = seriesStyle(run, which);
  const pts = run.summary.aggregate.flatMap((a) => {
    // The controls start from the dense network: at 100% there is nothing to reinitialise or prune.
    const s: Record<Metric, Stats> | undefined = which === run.main || a.level === 0 ? a.main : a.branches[which];
    return s ? [{ x: 100 * a.density.mean, mean: scale * s[metric].mean, min: scale * s[metric].min, max: scale * s[metric].max, n: s[metric].n }] : [];
  });
  return { name: style.label, color: style.color, dash: style.dash, points: which === run.main || pts.length > 1 ? pts : [] };
}

export function earlyStopFigures(run: RunData): Figure[] {
  const which = [run.main, ...run.branches];
  const sub = [describe(run), `${run.summary.complete ? `mean over ${run.replicates} replicate(s)` : `mean over the finished replicates (of ${run.replicates})`}; bands: min to max`, ...progressNote(run)];
  const controls = run.branches.length ? ' The controls share the dense network\'s point at 100%.' : '';
  return [
    {
      id: 'early-stop-iteration', heading: 'Early-stop iteration',
      caption: `Iteration of minimum validation loss against the percent of weights remaining (log scale, reversed as in the paper's Figure 4), winning tickets vs the controls.${controls} Only finished stages count.`,
      spec: densityChart({ title: 'Early-stop iteration vs weights remaining', subtitle: sub, yTitle: 'Early-stop iteration (val. loss)', yFormat: '~s', zero: true, series: which.map((w) => seriesFrom(run, w, 'earlyStopIteration', 1)) }),
    },
    {
      id: 'early-stop-accuracy', heading: 'Accuracy at early stop',
      caption: `Test accuracy at the early-stop iteration against the percent of weights remaining.${controls} Only finished stages count.`,
      spec: densityChart({ title: 'Test accuracy at early stop vs weights remaining', subtitle: sub, yTitle: 'Test accuracy at early stop (%)', yFormat: '.1f', zero: false, series: which.map((w) => seriesFrom(run, w, 'earlyStopTestAccuracy', 100)) }),
    },
  ];
}

/** Points of a group of runs sharing a label, merged by density: every finished replicate counts. */
export interface CompareGroup {
  label: string;
  runs: RunData[];
  points: Array<{ density: number; earlyStopIteration: Stats; earlyStopTestAccuracy: Stats }>;
}

export function compareGroups(runs: RunData[], labels?: readonly string[]): CompareGroup[] {
  const groups = new Map<string, RunData[]>();
  for (const [i, r] of runs.entries()) {
    const label = labels?.[i] ?? runLabel(r, runs.filter((o) => o !== r));
    groups.set(label, [...(groups.get(label) ?? []), r]);
  }
  return [...groups].map(([label, members]) => {
    const byDensity = new Map<string, { density: number[]; it: number[]; acc: number[] }>();
    for (const m of members) {
      for (const rep of m.summary.replicates) {
        for (const l of rep.levels) {
          const key = l.density.toFixed(6);
          const e = byDensity.get(key) ?? { density: [], it: [], acc: [] };
          e.density.push(l.density); e.it.push(l.earlyStopIteration); e.acc.push(l.earlyStopTestAccuracy);
          byDensity.set(key, e);
        }
      }
    }
    const points = [...byDensity.values()].map((e) => ({ density: stats(e.density).mean, earlyStopIteration: stats(e.it), earlyStopTestAccuracy: stats(e.acc) }))
      .sort((a, b) => b.density - a.density);
    return { label, runs: members, points };
  });
}

export function compareFigures(groups: CompareGroup[]): Figure[] {
  const series = (metric: 'earlyStopIteration' | 'earlyStopTestAccuracy', scale: number): Series[] => groups.map((g, i) => ({
    name: g.label, color: PALETTE[i % PALETTE.length], dash: i === 0 ? [] : [[7, 3], [2, 3], [9, 3, 2, 3]][(i - 1) % 3],
    points: g.points.map((p) => ({ x: 100 * p.density, mean: scale * p[metric].mean, min: scale * p[metric].min, max: scale * p[metric].max, n: p[metric].n })),
  }));
  const runsOf = (g: CompareGroup) => {
    const open = g.runs.filter((r) => !r.summary.complete).length;
    return `${g.label}: ${g.runs.length} run(s)${open ? `, ${open} in progress` : ''}`;
  };
  const sub = [`${groups.reduce((a, g) => a + g.runs.length, 0)} runs${groups.some((g) => g.runs.some((r) => !r.summary.complete)) ? ' (some in progress)' : ''}; winning tickets only; bands: min to max over finished replicates`];
  const caption = `Winning tickets of the compared runs (${groups.map(runsOf).join('; ')}), labelled by how they find their masks and the hyperparameters that set them apart; runs with the same label (e.g. one-shot runs to different densities) form one series. Only finished stages count.`;
  return [
    {
      id: 'compare-early-stop-iteration', heading: 'Compared runs: early-stop iteration', caption,
      spec: densityChart({ title: 'Early-stop iteration: compared runs', subtitle: sub, yTitle: 'Early-stop iteration (val. loss)', yFormat: '~s', zero: true, series: series('earlyStopIteration', 1) }),
    },
    {
      id: 'compare-early-stop-accuracy', heading: 'Compared runs: accuracy at early stop', caption,
      spec: densityChart({ title: 'Test accuracy at early stop: compared runs', subtitle: sub, yTitle: 'Test accuracy at early stop (%)', yFormat: '.1f', zero: false, series: series('earlyStopTestAccuracy', 100) }),
    },
  ];
}

/** The instability analyses of one level, over the finished replicates. */
export interface StabilityLevel {
  level: number;
  /** Mean fraction of weights remaining of the level's stability stages. */
  density: number;
  replicates: number[];
  /** Error barrier (a fraction of the test set): mean, min, max, n over the replicates. */
  errorBarrier: Stats;
  /** Test error (a fraction) at each alpha on the path, over the replicates that have a point there. */
  path: Array<{ alpha: number; testError: Stats }>;
}

/** run.stability by level (levels without a finished analysis left out). */
export function stabilityLevels(run: RunData): StabilityLevel[] {
  if (!run.branches.includes(STABILITY_BRANCH)) return [];
  const levels = [...new Set(run.stability.map((a) => a.level))].sort((a, b) => a - b);
  return levels.map((level) => {
    const here = run.stability.filter((a) => a.level === level);
    const byAlpha = new Map<string, { alpha: number; errors: number[] }>();
    for (const a of here) {
      for (const p of a.path) {
        const key = p.alpha.toFixed(6);
        const e = byAlpha.get(key) ?? { alpha: p.alpha, errors: [] };
        e.errors.push(p.testError);
        byAlpha.set(key, e);
      }
    }
    return {
      level,
      density: stats(here.map((a) => a.density)).mean,
      replicates: here.map((a) => a.replicate),
      errorBarrier: stats(here.map((a) => a.errorBarrier)),
      path: [...byAlpha.values()].sort((a, b) => a.alpha - b.alpha).map((e) => ({ alpha: e.alpha, testError: stats(e.errors) })),
    };
  });
}

/**
 * The instability analysis (Frankle, Dziugaite, Roy & Carbin 2020) of a run with the
 * 'stability' branch: the error barrier against weights remaining, and the test error
 * along the line between the two copies per level. None without a finished analysis.
 */
export function stabilityFigures(run: RunData): Figure[] {
  const levels = stabilityLevels(run);
  if (levels.length === 0) return [];
  const over = run.replicates === 1 ? 'the one replicate' : `the finished replicates (of ${run.replicates})`;
  const sub = [describe(run), `mean over ${over}${run.replicates > 1 ? '; band: min to max' : ''}`, ...progressNote(run)];
  const barrier: Series = {
    name: 'error barrier', color: PALETTE[3], dash: [],
    points: levels.map((l) => ({ x: 100 * l.density, mean: 100 * l.errorBarrier.mean, min: 100 * l.errorBarrier.min, max: 100 * l.errorBarrier.max, n: l.errorBarrier.n })),
  };
  // Barriers of a few hundredths of a point (stable tickets) need more decimals than tens of points.
  const top = Math.max(...barrier.points.map((p) => Math.abs(p.max)));
  const shown = pickCurves(levels);
  const name = (l: StabilityLevel) => `${pctLabel(l.density)}${shown.some((o) => o !== l && pctLabel(o.density) === pctLabel(l.density)) ? ` (level ${l.level})` : ''}`;
  const lines = shown.map((l, i) => ({
    name: name(l), color: PALETTE[i % PALETTE.length], dash: [],
    points: l.path.map((p) => ({ alpha: p.alpha, value: 100 * p.testError.mean })),
  }));
  const what = `The ticket of each level is trained twice from its starting weights with two data orders (the '${STABILITY_BRANCH}' branch; copy a is the stage's network) and the test error is measured along the straight line between the two.`;
  const only = 'Only finished stability stages with an instability analysis in done.json count.';
  return [
    {
      id: 'stability-error-barrier', heading: 'Instability: error barrier',
      caption: `${what} The error barrier is the largest test error on that line minus the mean error of its two ends, in percentage points: about 0 when the two copies end in one linearly connected minimum (stable), large when they do not (Frankle, Dziugaite, Roy & Carbin 2020). Weights remaining on the log scale of the other figures; mean over ${over}. ${only}`,
      spec: densityChart({ title: 'Error barrier vs weights remaining', subtitle: sub, yTitle: 'Error barrier (percentage points)', yFormat: top >= 5 ? '.1f' : top >= 0.1 ? '.2f' : '.3f', zero: true, series: [barrier] }),
    },
    {
      id: 'stability-interpolation', heading: 'Instability: linear interpolation between the two copies',
      caption: `${what} Test error at each interpolation point α (weights (1 − α)·a + α·b), one line per level labelled by its percent of weights remaining, mean over ${over}.${shown.length < levels.length ? ` Showing ${shown.length} of ${levels.length} levels (nearest the paper's ladder).` : ''} ${only}`,
      spec: pathChart({ title: 'Test error along the line between the two copies', subtitle: sub.slice(0, 1).concat(`mean over ${over}`, progressNote(run)), yTitle: 'Test error (%)', legendTitle: 'Weights remaining', series: lines }),
    },
  ];
}

export function maskFigure(run: RunData): Figure | null {
  const m = run.mask;
  if (!m || m.levels.length === 0) return null;
  // Each level on its own scale: a pixel's fraction of connections kept over the layer's
  // density at that level (1 = as many as average). On one absolute scale every level below
  // ~20% of the weights is the same dark square and hides which pixels the ticket keeps.
  const panels = m.levels.map((l) => ({
    title: `level ${l.level} · ${pctLabel(l.density)}${l.finished ? '' : ' (in progress)'}`,
    width: m.width, height: m.height, values: l.relative,
  }));
  const channels = m.channels > 1 ? `, summed over ${m.channels} channels` : '';
  const what = m.after ? `first fully connected layer (${m.layer}, reading ${m.after}'s ${m.channels}×${m.height}×${m.width} output)` : `first layer (${m.layer})`;
  const pixel = m.after ? 'position of the feature map' : 'input pixel';
  return {
    id: 'first-layer-mask', heading: `Mask of the ${what}`,
    caption: `For each ${pixel}, the fraction of its ${m.max} connections into ${m.layer} [${m.shape.join(', ')}] that survive pruning${channels}, divided by the layer's density at that level (kept / layer density): 1 (white) is as many as the average ${pixel}, 0 (blue) none left, orange more than average, and 2 or more (twice the average) the darkest orange. Each level is thus on its own scale, so sparse levels show their structure too (replicate 0, main; ${m.height}×${m.width} grid). Panel titles give the level and the fraction of all prunable weights remaining; the layer's density and the counts are in the mask table.`,
    spec: heatmapGrid({
      title: `${m.after ? 'First fully connected layer' : 'First layer'}: connections kept per ${pixel} (${m.layer})`, subtitle: [`${describe(run)}; replicate 0${channels}; kept / layer density, 1 = average`],
      legendTitle: 'kept / layer density', max: 2, mid: 1, clamp: true, panels,
    }),
  };
}
