import type * as vega from 'vega';
import type { Stats } from '../lottery/summary.js';
import { BRANCH_COLORS, BRANCH_DASHES, PALETTE, PAPER_TICKS, costChart, curvesChart, densityChart, distanceChart, heatmapGrid, pathChart, type CostSeries, type Series } from './charts.js';
import { STABILITY_BRANCH, hasCosts, runLabel, stats, type Curve, type Metric, type RunData, type StageCost } from './run-data.js';

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

/** One point of a cost figure: a level (or, across runs, a density) of a series, over the replicates that have it. */
export interface CostEntry {
  /** The level (across runs: the lowest level among the merged points). */
  level: number;
  /** Fraction of weights remaining, mean over the replicates. */
  density: number;
  /** Seconds or FLOPs: mean, min, max, n over the replicates. */
  cost: Stats;
  /** Early-stop test accuracy (a fraction) over the same replicates. */
  accuracy: Stats;
}

/** A series of the cost figures: its points against seconds and against FLOPs (only stages with `flops`). */
export interface CostSeriesData {
  /** 'ticket', 'dense', or the branch's name (across runs: '<label>' and '<label>:<branch>'). */
  key: string;
  name: string;
  /** Whether its costs add the levels before (finding a ticket costs every level before it). */
  cumulative: boolean;
  color: string;
  dash: number[];
  shape: string;
  seconds: CostEntry[];
  flops: CostEntry[];
}

/** One stage's (or one ticket's cumulative) cost and accuracy. */
export interface CostSample { level: number; density: number; seconds: number; flops: number | null; accuracy: number }

/** Whether the run prunes at initialisation: each level's ticket then comes from θ0 alone, needing no earlier level. */
function prunesAtInit(run: RunData): boolean {
  return run.hparams.identity.atInit === true;
}

/**
 * The ticket of each level of each replicate at the cumulative cost of its 'main' stages
 * 0..k: finding the ticket of level k costs every level before it. A replicate's ladder
 * stops at its first unfinished level; its FLOPs stop at the first stage without them.
 * Pruned at initialisation, a level's ticket costs its own stage only.
 */
export function ticketCostSamples(run: RunData): CostSample[] {
  if (prunesAtInit(run)) return run.costs.filter((c) => c.stage === run.main).map(ownCost);
  const out: CostSample[] = [];
  for (let r = 0; r < run.replicates; r++) {
    let seconds = 0;
    let flops: number | null = 0;
    for (let k = 0; k <= run.levels; k++) {
      const c = run.costs.find((x) => x.replicate === r && x.level === k && x.stage === run.main);
      if (!c) break;
      seconds += c.seconds;
      flops = flops !== null && c.flops ? flops + c.flops.actual : null;
      out.push({ level: k, density: c.density, seconds, flops, accuracy: c.earlyStopTestAccuracy });
    }
  }
  return out;
}

const ownCost = (c: StageCost): CostSample => ({ level: c.level, density: c.density, seconds: c.seconds, flops: c.flops ? c.flops.actual : null, accuracy: c.earlyStopTestAccuracy });

/** Samples merged by key (a level, or a density across runs), in the order of `order`: seconds from those with finite seconds, FLOPs from those with FLOPs. */
function costEntries(samples: CostSample[], by: 'level' | 'density'): { seconds: CostEntry[]; flops: CostEntry[] } {
  const groups = new Map<string, CostSample[]>();
  for (const s of samples) {
    const key = by === 'level' ? String(s.level) : s.density.toFixed(6);
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const sorted = [...groups.values()].sort((a, b) => (by === 'level' ? a[0].level - b[0].level : b[0].density - a[0].density));
  const entries = (cost: (s: CostSample) => number | null): CostEntry[] => sorted.flatMap((g) => {
    const here = g.filter((s) => { const c = cost(s); return c !== null && Number.isFinite(c) && Number.isFinite(s.accuracy); });
    if (here.length === 0) return [];
    return [{ level: Math.min(...here.map((s) => s.level)), density: stats(here.map((s) => s.density)).mean, cost: stats(here.map((s) => cost(s)!)), accuracy: stats(here.map((s) => s.accuracy)) }];
  });
  return { seconds: entries((s) => s.seconds), flops: entries((s) => s.flops) };
}

/** How a run finds its ticket, for the cost figures' series names. */
export function ticketMethod(run: RunData): string {
  if (run.costs.some((c) => c.stage === run.main && c.earlyBird !== null)) return 'early-bird IMP';
  if (run.hparams.identity.atInit === true) return 'pruning at init';
  return run.hparams.resolved.oneShot ? 'one-shot' : 'IMP';
}

/**
 * The series of a run's cost figures: its ticket at the cumulative cost of its levels, the
 * dense network (level 0's 'main' stage, one point), and every other branch at its own
 * stage's cost, one point per level; means over the finished replicates.
 */
export function costSeries(run: RunData): CostSeriesData[] {
  const ticket = seriesStyle(run, run.main);
  const level0 = run.costs.filter((c) => c.stage === run.main && c.level === 0);
  const stopped = level0.some((c) => c.earlyBird?.drawnAt != null);
  const out: CostSeriesData[] = [
    { key: 'ticket', name: `${ticketMethod(run)} ticket${prunesAtInit(run) ? '' : ' (cumulative)'}`, cumulative: !prunesAtInit(run), color: ticket.color, dash: ticket.dash, shape: 'circle', ...costEntries(ticketCostSamples(run), 'level') },
    { key: 'dense', name: stopped ? 'dense (level 0, stopped at its early-bird draw)' : 'dense (level 0)', cumulative: false, color: '#000000', dash: [], shape: 'square', ...costEntries(level0.map(ownCost), 'level') },
  ];
  for (const b of run.branches) {
    const style = seriesStyle(run, b);
    out.push({ key: b, name: style.label, cumulative: false, color: style.color, dash: style.dash, shape: 'circle', ...costEntries(run.costs.filter((c) => c.stage === b).map(ownCost), 'level') });
  }
  return out.filter((s) => s.seconds.length > 0 || s.flops.length > 0);
}

/**
 * The compared runs' cost series: each label's ticket (cumulative) and its dynamic sparse
 * training branches (own cost; named '<branch label>: <label>', so that a long label cut
 * short in the legend still tells them apart), merged by density.
 */
export function compareCostSeries(groups: CompareGroup[]): CostSeriesData[] {
  const out: CostSeriesData[] = [];
  for (const [i, g] of groups.entries()) {
    const dash = i === 0 ? [] : [[7, 3], [2, 3], [9, 3, 2, 3]][(i - 1) % 3];
    out.push({ key: g.label, name: g.label, cumulative: true, color: PALETTE[i % PALETTE.length], dash, shape: 'circle', ...costEntries(g.runs.flatMap(ticketCostSamples), 'density') });
    const dynamic = [...new Set(g.runs.flatMap((r) => r.costs.filter((c) => c.stage !== r.main && c.sparseTraining !== null).map((c) => c.stage)))];
    for (const [j, b] of dynamic.entries()) {
      const label = g.runs.map((r) => r.labels[b]).find((l) => l !== undefined) ?? b;
      const samples = g.runs.flatMap((r) => r.costs.filter((c) => c.stage === b && c.stage !== r.main).map(ownCost));
      out.push({ key: `${g.label}:${b}`, name: `${label}: ${g.label}`, cumulative: false, color: PALETTE[i % PALETTE.length], dash, shape: ['triangle-up', 'diamond', 'cross', 'triangle-down'][j % 4], ...costEntries(samples, 'density') });
    }
  }
  return out.filter((s) => s.seconds.length > 0 || s.flops.length > 0);
}

function toChartSeries(data: CostSeriesData[], which: 'seconds' | 'flops'): CostSeries[] {
  return data.filter((s) => s[which].length > 0).map((s) => ({
    name: s.name, color: s.color, dash: s.dash, shape: s.shape, line: s.cumulative,
    points: s[which].map((e, order) => ({ x: e.cost.mean, xMin: e.cost.min, xMax: e.cost.max, mean: 100 * e.accuracy.mean, min: 100 * e.accuracy.min, max: 100 * e.accuracy.max, n: e.accuracy.n, order })),
  }));
}

function costPair(data: CostSeriesData[], opts: { idPrefix: string; headingPrefix: string; titleSuffix: string; subtitle: string[]; what: string }): Figure[] {
  const figures: Figure[] = [];
  const seconds = toChartSeries(data, 'seconds');
  if (seconds.length) {
    figures.push({
      id: `${opts.idPrefix}cost-seconds`, heading: `${opts.headingPrefix}Accuracy against training time`,
      caption: `Test accuracy at early stop against the wall-clock seconds of training (evaluation included, done.json's seconds). ${opts.what} Only finished stages count.`,
      spec: costChart({ title: `Test accuracy at early stop vs training time${opts.titleSuffix}`, subtitle: opts.subtitle, xTitle: 'Training time (s)', xFormat: '~s', log: false, yTitle: 'Test accuracy at early stop (%)', series: seconds }),
    });
  }
  const flops = toChartSeries(data, 'flops');
  if (flops.length) {
    figures.push({
      id: `${opts.idPrefix}cost-flops`, heading: `${opts.headingPrefix}Accuracy against training FLOPs`,
      caption: `Test accuracy at early stop against the training FLOPs as computed on the stage's kernels (done.json's flops.actual; log scale). ${opts.what} Only finished stages that record their FLOPs count.`,
      spec: costChart({ title: `Test accuracy at early stop vs training FLOPs${opts.titleSuffix}`, subtitle: opts.subtitle, xTitle: 'Training FLOPs (log scale)', xFormat: '~s', log: true, yTitle: 'Test accuracy at early stop (%)', series: flops }),
    });
  }
  return figures;
}

/**
 * Accuracy against training cost (seconds, and FLOPs where the stages record them) of a run
 * made by a version that records costs; none for runs of older versions.
 */
export function costFigures(run: RunData): Figure[] {
  if (!hasCosts(run)) return [];
  const over = run.replicates === 1 ? 'the one replicate' : `the finished replicates (of ${run.replicates})`;
  const sub = [describe(run), `mean over ${over}${run.replicates > 1 ? '; rules: min to max' : ''}`, ...progressNote(run)];
  const what = (prunesAtInit(run)
    ? `The ${ticketMethod(run)} ticket of each level sits at its own '${run.main}' stage's cost (pruned at θ0, it needs no earlier level); the dense network is level 0.`
    : `The ${ticketMethod(run)} ticket of level k sits at the cumulative cost of the '${run.main}' stages of levels 0 to k (finding it costs every level before it), starting at the dense network (level 0, drawn on its own too).`)
    + `${run.branches.length ? ` Every other branch is at its own stage's cost, one point per level (a control's mask comes from the ticket's levels, whose cost it does not include).` : ''} Mean over ${over}.`;
  return costPair(costSeries(run), { idPrefix: '', headingPrefix: '', titleSuffix: '', subtitle: sub, what });
}

/** The cost figures of compared runs: one series per label (its ticket, cumulative) and its dynamic sparse training branches; none when no run records costs. */
export function compareCostFigures(groups: CompareGroup[]): Figure[] {
  if (!groups.some((g) => g.runs.some(hasCosts))) return [];
  const sub = [`${groups.reduce((a, g) => a + g.runs.length, 0)} runs; tickets at cumulative cost; rules: min to max over finished replicates`];
  const what = 'Each label\'s ticket of a level at the cumulative cost of its ticket stages up to that level (finding it costs every level before it), merged by weights remaining over the label\'s runs and replicates; its dynamic sparse training branches (stages with sparseTraining) at their own stage\'s cost, in the label\'s colour with their own marks.';
  return costPair(compareCostSeries(groups), { idPrefix: 'compare-', headingPrefix: 'Compared runs: ', titleSuffix: ': compared runs', subtitle: sub, what });
}

/** The early-bird search of one level's 'main' stages, over the replicates that have one. */
export interface EarlyBirdLevel {
  level: number;
  /** The fraction of weights its stages trained with, mean over the replicates. */
  density: number;
  replicates: number[];
  /** The distinct ε of its stages. */
  epsilons: number[];
  /** Mean distance at each iteration over the replicates with a point there. */
  points: Array<{ iteration: number; distance: Stats }>;
  /** Each replicate's draw: the iteration, and its distance there (NaN when its points lack that iteration); null: never drawn. */
  draws: Array<{ replicate: number; iteration: number | null; distance: number }>;
}

/** The early-bird searches of a run's 'main' stages, by level (empty for a run without --early-bird). */
export function earlyBirdLevels(run: RunData): EarlyBirdLevel[] {
  const searched = run.costs.filter((c) => c.stage === run.main && c.earlyBird !== null);
  const levels = [...new Set(searched.map((c) => c.level))].sort((a, b) => a - b);
  return levels.map((level) => {
    const here = searched.filter((c) => c.level === level);
    const byIt = new Map<number, number[]>();
    for (const c of here) for (const p of c.earlyBird!.points) byIt.set(p.iteration, [...(byIt.get(p.iteration) ?? []), p.distance]);
    return {
      level,
      density: stats(here.map((c) => c.density)).mean,
      replicates: here.map((c) => c.replicate),
      epsilons: [...new Set(here.map((c) => c.earlyBird!.epsilon))].sort((a, b) => a - b),
      points: [...byIt].sort((a, b) => a[0] - b[0]).map(([iteration, d]) => ({ iteration, distance: stats(d) })),
      draws: here.map((c) => {
        const at = c.earlyBird!.drawnAt;
        return { replicate: c.replicate, iteration: at, distance: at === null ? NaN : c.earlyBird!.points.find((p) => p.iteration === at)?.distance ?? NaN };
      }),
    };
  });
}

/**
 * The early-bird search (You et al., ICLR 2020) of a run made with --early-bird: the mask
 * distance between consecutive draws against iteration, one line per level, ε as a rule,
 * the draws marked. Null for a run without one.
 */
export function earlyBirdFigure(run: RunData, opts: { id?: string; label?: string } = {}): Figure | null {
  const levels = earlyBirdLevels(run);
  if (levels.length === 0) return null;
  const shown = pickCurves(levels);
  const over = run.replicates === 1 ? 'the one replicate' : `the finished replicates (of ${run.replicates})`;
  const series = shown.map((l, i) => ({
    name: `level ${l.level} · ${pctLabel(l.density)}`, color: PALETTE[i % PALETTE.length], dash: [],
    points: l.points.map((p) => ({ iteration: p.iteration, distance: p.distance.mean })),
    draws: l.draws.flatMap((d) => (d.iteration !== null && Number.isFinite(d.distance) ? [{ iteration: d.iteration, distance: d.distance }] : [])),
  }));
  const never = levels.flatMap((l) => l.draws.filter((d) => d.iteration === null).map((d) => `level ${l.level} replicate ${d.replicate}`));
  const epsilons = [...new Set(levels.flatMap((l) => l.epsilons))].sort((a, b) => a - b);
  const of = opts.label ? ` (${opts.label})` : '';
  return {
    id: opts.id ?? 'early-bird-distance', heading: `Early-bird mask distance${of}`,
    caption: `During each level's training of the ticket ('${run.main}' stages), the pruning strategy's mask is drawn every few iterations and compared with the one drawn before: the normalised Hamming distance (the share of weights that one keeps and the other prunes), one line per level (by the weights the level trained with), mean over ${over}. Once it falls below ε (the dashed rule) the ticket is drawn and training stops (You et al., ICLR 2020): diamonds mark each replicate's draw.`
      + `${shown.length < levels.length ? ` Showing ${shown.length} of ${levels.length} levels.` : ''}${never.length ? ` Never drawn (trained the whole budget): ${never.join(', ')}.` : ''} Only finished stages count.`,
    spec: distanceChart({ title: `Early-bird search: mask distance vs iteration${of}`, subtitle: [describe(run), `mean over ${over}`, ...progressNote(run)], legendTitle: 'Level', epsilons, series }),
  };
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
