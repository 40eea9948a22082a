import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { readJson } from '../store/atomic.js';
import { FILES, notInsideRun, readDone, readFailed, readMetrics, stageDir, stagePath, verifyStage, type StageName, type StageResult } from '../store/layout.js';
import { loadSafetensors } from '../store/safetensors.js';
import { buildSummary, type LotterySummary } from '../store/summary.js';

export { METRICS, stats, type Metric } from '../store/summary.js';

/** What a run's hparams.json holds (`resolved` is the LotteryHparams the runner was given). */
export interface RunHparams {
  identity: Record<string, unknown>;
  /** The ticket's branch and the controls, in order, with the labels reports use (absent in runs of older versions). */
  branches?: Array<{ name: string; label: string }>;
  resolved: {
    training: Record<string, unknown> & { model?: string; dataset?: string; steps?: string };
    levels: number;
    oneShot?: boolean;
    targetDensity?: number;
    branches: string[];
    replicates: number;
    [key: string]: unknown;
  };
}

export type StageState = 'done' | 'in_progress' | 'failed' | 'damaged' | 'pending';

export interface StageStatus {
  replicate: number;
  level: number;
  stage: StageName;
  state: StageState;
  /** Why it failed for good (its failed.json): a user's mistake, such as a diverged loss. */
  message?: string;
  /** Fraction of weights remaining: from done.json, or from the stage's mask while it trains. */
  density: number | null;
}

export interface CurvePoint { iteration: number; mean: number; min: number; max: number; n: number }

/** Test accuracy over training of one level's winning ticket, mean over replicates. */
export interface Curve {
  level: number;
  density: number;
  /** Replicates the points average over. */
  replicates: number[];
  /** Drawn from stages that have not finished (metrics.csv without done.json). */
  partial: boolean;
  points: CurvePoint[];
}

/** How many connections of the first layer survive, per input pixel, per level (replicate 0). */
export interface MaskGrids {
  layer: string;
  /** The convolution whose output the layer reads (its channels), or null for an image input. */
  after: string | null;
  /** [out, in] of the layer; in = channels * height * width. */
  shape: [number, number];
  channels: number;
  height: number;
  width: number;
  /** Connections per pixel when nothing is pruned: out * channels. */
  max: number;
  levels: Array<{
    level: number;
    /** Fraction of all prunable weights remaining. */
    density: number;
    /** Fraction of the layer's weights remaining. */
    layerDensity: number;
    finished: boolean;
    /** Connections kept per pixel (summed over channels), row-major height x width. */
    counts: number[];
    /** Per pixel, the fraction of its connections kept over the layer's density (1: as many as average; see relativeToDensity). */
    relative: number[];
  }>;
}

/**
 * Per pixel, the fraction of its `max` connections that are kept, divided by the
 * layer's density: 1 is a pixel that keeps as many as the average pixel, 0 one
 * that lost all of them, 2 one that keeps twice the average. A layer with
 * nothing left is all 0.
 */
export function relativeToDensity(counts: readonly number[], max: number, layerDensity: number): number[] {
  return counts.map((c) => (max > 0 && layerDensity > 0 ? c / max / layerDensity : 0));
}

/** One point of the straight line between the two copies of a stability stage. */
export interface StabilityPathPoint {
  /** The weight of copy b: the weights are (1 - alpha)·a + alpha·b. */
  alpha: number;
  /** NaN where done.json has no number (a diverged copy). */
  testLoss: number;
  /** Fraction of the test set misclassified. */
  testError: number;
}

/** The instability analysis of one finished 'stability' stage (done.json's `analysis`). */
export interface StabilityAnalysis {
  replicate: number;
  level: number;
  /** The stage's fraction of prunable weights remaining. */
  density: number;
  /** Max test error on the path minus the mean of its ends' errors (a fraction). */
  errorBarrier: number;
  /** The data-order seeds of the two copies, when done.json gives them. */
  orderSeeds: [number, number] | null;
  /** By increasing alpha. */
  path: StabilityPathPoint[];
}

/** The branch whose stages carry an instability analysis. */
export const STABILITY_BRANCH = 'stability';

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * done.json's `analysis` of a stability stage as the report uses it, or null when it is
 * absent, of another kind, or malformed (no finite errorBarrier, or a path without at
 * least two points of finite alpha in [0, 1] and finite testError).
 */
export function parseInstability(analysis: unknown): Omit<StabilityAnalysis, 'replicate' | 'level' | 'density'> | null {
  if (!analysis || typeof analysis !== 'object' || Array.isArray(analysis)) return null;
  const a = analysis as Record<string, unknown>;
  if (a.kind !== 'instability' || !finite(a.errorBarrier) || !Array.isArray(a.path) || a.path.length < 2) return null;
  const path: StabilityPathPoint[] = [];
  for (const p of a.path as unknown[]) {
    if (!p || typeof p !== 'object') return null;
    const q = p as Record<string, unknown>;
    if (!finite(q.alpha) || q.alpha < 0 || q.alpha > 1 || !finite(q.testError)) return null;
    path.push({ alpha: q.alpha, testLoss: finite(q.testLoss) ? q.testLoss : NaN, testError: q.testError });
  }
  path.sort((x, y) => x.alpha - y.alpha);
  const seeds = Array.isArray(a.orderSeeds) && a.orderSeeds.length === 2 && a.orderSeeds.every(finite) ? [a.orderSeeds[0], a.orderSeeds[1]] as [number, number] : null;
  return { errorBarrier: a.errorBarrier, orderSeeds: seeds, path };
}

/** What a finished stage cost to train, and its early-bird search or dynamic sparse training (done.json), as the report uses them. */
export interface StageCost {
  replicate: number;
  level: number;
  stage: string;
  density: number;
  earlyStopTestAccuracy: number;
  /** Training wall-clock, evaluation included (NaN where done.json has no finite number). */
  seconds: number;
  /** Training FLOPs on its kernels and dense-equivalent; null in stages of older versions. */
  flops: { actual: number; dense: number } | null;
  /** The early-bird search of a 'main' stage (--early-bird); null without one. */
  earlyBird: EarlyBirdSearch | null;
  /** Dynamic sparse training (rigl, set); null without it. */
  sparseTraining: { method: string; updates: number; regrown: number; updateSeconds: number } | null;
}

export interface EarlyBirdSearch {
  epsilon: number;
  every: number;
  /** The iteration where the mask distance fell below epsilon, or null: it never did. */
  drawnAt: number | null;
  /** By increasing iteration. */
  points: Array<{ iteration: number; distance: number }>;
}

/** done.json's `flops`, or null when absent or not two finite numbers. */
export function parseFlops(v: unknown): StageCost['flops'] {
  if (!v || typeof v !== 'object') return null;
  const f = v as Record<string, unknown>;
  return finite(f.actual) && finite(f.dense) && f.actual >= 0 && f.dense >= 0 ? { actual: f.actual, dense: f.dense } : null;
}

/** done.json's `earlyBird`, or null when absent or malformed (points without a finite iteration and distance are dropped). */
export function parseEarlyBird(v: unknown): EarlyBirdSearch | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const e = v as Record<string, unknown>;
  if (!finite(e.epsilon) || !Array.isArray(e.points)) return null;
  const points = (e.points as unknown[]).flatMap((p) => {
    const q = (p ?? {}) as Record<string, unknown>;
    return finite(q.iteration) && finite(q.distance) ? [{ iteration: q.iteration, distance: q.distance }] : [];
  }).sort((a, b) => a.iteration - b.iteration);
  return { epsilon: e.epsilon, every: finite(e.every) ? e.every : NaN, drawnAt: finite(e.drawnAt) ? e.drawnAt : null, points };
}

function parseSparseTraining(v: unknown): StageCost['sparseTraining'] {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const t = v as Record<string, unknown>;
  const n = (x: unknown) => (finite(x) ? x : NaN);
  return { method: String(t.method ?? '?'), updates: n(t.updates), regrown: n(t.regrown), updateSeconds: n(t.updateSeconds) };
}

/** The cost and search fields of a finished stage. */
export function stageCost(d: StageResult): StageCost {
  return {
    replicate: d.replicate, level: d.level, stage: d.stage, density: d.density, earlyStopTestAccuracy: d.earlyStopTestAccuracy,
    seconds: finite(d.seconds) ? d.seconds : NaN,
    flops: parseFlops(d.flops), earlyBird: parseEarlyBird(d.earlyBird), sparseTraining: parseSparseTraining(d.sparseTraining),
  };
}

/** Whether a run was made by a version that records training costs (some finished stage has flops, an early-bird search or dynamic sparse training). */
export function hasCosts(run: RunData): boolean {
  return run.costs.some((c) => c.flops !== null || c.earlyBird !== null || c.sparseTraining !== null);
}

export interface RunData {
  dir: string;
  run: string;
  hparams: RunHparams;
  levels: number;
  replicates: number;
  /** The control branches of the run, in order. */
  branches: string[];
  /** The ticket's branch name and every branch's label. */
  main: string;
  labels: Record<string, string>;
  /** Built from the finished stages on disk exactly as the runner builds summary.json. */
  summary: LotterySummary;
  stages: StageStatus[];
  curves: Curve[];
  mask: MaskGrids | null;
  /** The instability analyses of the finished 'stability' stages, by replicate then level (empty when the run has no such branch). */
  stability: StabilityAnalysis[];
  /** Stage ids (replicate_<r>/level_<k>/stability) of finished stability stages whose analysis is absent or not understood: left out. */
  ignoredAnalyses: string[];
  /** Finished stages whose done.json or metrics.csv changed since they finished, with what: left out as unfinished. */
  damaged: string[];
  /** Every finished stage of the run's shape (the ticket's and the listed branches'), by replicate, level, then branch order. */
  costs: StageCost[];
}

function maskDensity(file: string): number | null {
  if (!fs.existsSync(file)) return null;
  let kept = 0, total = 0;
  for (const t of loadSafetensors(file).values()) {
    for (let i = 0; i < t.data.length; i++) if (t.data[i] !== 0) kept++;
    total += t.data.length;
  }
  return total === 0 ? 1 : kept / total;
}

/** 'fc10' after 'fc9': compare names by their digit runs as numbers. */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

const isSquare = (n: number) => Number.isInteger(Math.sqrt(n));

/**
 * The first fully connected layer's input as channels x height x width: the
 * channels of the last convolution before it when there is one, else a square
 * image, else the fewest channels that leave a square, else one row.
 */
function inputGrid(inFeatures: number, previousChannels: number | null): { channels: number; height: number; width: number } {
  const candidates = previousChannels ? [previousChannels] : [];
  candidates.push(1, 2, 3, 4, 8, 16);
  for (const c of candidates) {
    if (inFeatures % c === 0 && isSquare(inFeatures / c)) {
      const side = Math.sqrt(inFeatures / c);
      return { channels: c, height: side, width: side };
    }
  }
  const width = Math.ceil(Math.sqrt(inFeatures));
  return { channels: 1, height: Math.ceil(inFeatures / width), width };
}

function loadMaskGrids(dir: string, levels: number, main: string): MaskGrids | null {
  const level0 = stageDir(dir, 0, 0, main);
  const shapesFile = path.join(level0, FILES.init);
  if (!fs.existsSync(shapesFile)) return null;
  // Masks are stored flat; the parameters' shapes come from the initial weights.
  const shapes = new Map([...loadSafetensors(shapesFile)].map(([n, t]) => [n, t.shape]));
  const first = fs.existsSync(path.join(level0, FILES.mask)) ? loadSafetensors(path.join(level0, FILES.mask)) : null;
  if (!first) return null;
  const names = [...first.keys()].sort(naturalCompare);
  const layer = names.find((n) => shapes.get(n)?.length === 2);
  if (!layer) return null;
  const [out, inFeatures] = shapes.get(layer)! as [number, number];
  const convs = names.filter((n) => shapes.get(n)?.length === 4 && naturalCompare(n, layer) < 0);
  const after = convs.length ? convs[convs.length - 1] : null;
  const grid = inputGrid(inFeatures, after ? shapes.get(after)![0] : null);
  const pixels = grid.height * grid.width;
  const result: MaskGrids = { layer, after: after && grid.channels === shapes.get(after)![0] ? after.replace(/\.weight$/, '') : null, shape: [out, inFeatures], ...grid, max: out * grid.channels, levels: [] };
  for (let k = 0; k <= levels; k++) {
    const sdir = stageDir(dir, 0, k, main);
    const file = path.join(sdir, FILES.mask);
    if (!fs.existsSync(file)) continue;
    const tensors = loadSafetensors(file);
    const m = tensors.get(layer);
    if (!m || m.data.length !== out * inFeatures) continue;
    const counts = new Array<number>(pixels).fill(0);
    let kept = 0;
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inFeatures; i++) {
        if (m.data[o * inFeatures + i] !== 0) {
          counts[i % pixels]++; // PyTorch flattens [C, H, W] channel-major: i = c*H*W + y*W + x
          kept++;
        }
      }
    }
    let all = 0, total = 0;
    for (const t of tensors.values()) {
      for (let i = 0; i < t.data.length; i++) if (t.data[i] !== 0) all++;
      total += t.data.length;
    }
    const layerDensity = kept / (out * inFeatures);
    result.levels.push({ level: k, density: total ? all / total : 1, layerDensity, finished: readDone(sdir) !== null, counts, relative: relativeToDensity(counts, result.max, layerDensity) });
  }
  return result;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function loadCurves(dir: string, replicates: number, levels: number, stages: StageStatus[], main: string): Curve[] {
  const curves: Curve[] = [];
  for (let k = 0; k <= levels; k++) {
    const finished: Array<{ r: number; rows: Map<number, number> }> = [];
    const partial: Array<{ r: number; rows: Map<number, number> }> = [];
    for (let r = 0; r < replicates; r++) {
      const sdir = stageDir(dir, r, k, main);
      const state = stages.find((s) => s.replicate === r && s.level === k && s.stage === main)?.state;
      if (state === 'damaged') continue;
      const rows = readMetrics(sdir).filter((m) => m.name === 'test_accuracy' && Number.isFinite(m.iteration) && Number.isFinite(m.value));
      if (rows.length === 0) continue;
      (state === 'done' ? finished : partial).push({ r, rows: new Map(rows.map((m) => [m.iteration, m.value])) });
    }
    // Finished replicates only, unless none has finished: then the partial curves, marked.
    const use = finished.length > 0 ? finished : partial;
    if (use.length === 0) continue;
    const iterations = [...new Set(use.flatMap((u) => [...u.rows.keys()]))].sort((a, b) => a - b);
    const points = iterations.map((it) => {
      const v = use.flatMap((u) => (u.rows.has(it) ? [u.rows.get(it)!] : []));
      return { iteration: it, mean: mean(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
    });
    const dens = stages.filter((s) => s.level === k && s.stage === main && s.density !== null && use.some((u) => u.r === s.replicate)).map((s) => s.density!);
    curves.push({ level: k, density: dens.length ? mean(dens) : NaN, replicates: use.map((u) => u.r), partial: finished.length === 0, points });
  }
  return curves;
}

/** Reads everything the report shows from a run directory; a run still in progress is fine. */
export function loadRun(dir: string): RunData {
  const hpFile = path.join(dir, FILES.hparams);
  if (!fs.existsSync(dir)) throw new LthError(`report: run directory ${dir} does not exist`);
  notInsideRun(dir, 'report: ');
  if (!fs.existsSync(hpFile)) throw new LthError(`report: ${dir} is not a lottery run directory (expected ${FILES.hparams} in it; run directories are <root>/<hash>, see 'lth ls')`);
  let hparams: RunHparams;
  try {
    hparams = readJson<RunHparams>(hpFile);
  } catch (e) {
    throw new LthError(`report: ${hpFile} is damaged (${(e as Error).message})`);
  }
  if (!hparams.resolved || typeof hparams.resolved.levels !== 'number' || typeof hparams.resolved.replicates !== 'number') {
    throw new LthError(`report: ${hpFile} is not a lottery run's hparams (expected {identity, resolved: {levels, replicates, ...}})`);
  }
  const levels = hparams.resolved.levels;
  const replicates = hparams.resolved.replicates;
  // Runs of older versions name no branches in hparams.json: their ticket was 'main' and their controls these two.
  const known = hparams.branches ?? [{ name: 'main', label: 'winning ticket' }, { name: 'reinit', label: 'random reinit' }, { name: 'random_prune', label: 'random pruning' }];
  const main = known[0].name;
  const branches = (hparams.resolved.branches ?? []).filter((b) => b !== main);
  const labels = Object.fromEntries(known.map((b) => [b.name, b.label]));
  const seed = Number(hparams.resolved.training.seed ?? 0);

  const stages: StageStatus[] = [];
  const done: StageResult[] = [];
  const stability: StabilityAnalysis[] = [];
  const ignoredAnalyses: string[] = [];
  const damaged: string[] = [];
  for (let r = 0; r < replicates; r++) {
    for (let k = 0; k <= levels; k++) {
      for (const stage of [main, ...(k > 0 ? branches : [])] as StageName[]) {
        const sdir = stageDir(dir, r, k, stage);
        let d = readDone(sdir);
        // The files the report reads, checked as lth verify checks them (the weights are not read).
        const problems = d ? verifyStage(sdir, d, [FILES.metrics]) : [];
        if (problems.length) {
          damaged.push(`${stagePath(r, k, stage)} (${problems.join('; ')})`);
          d = null;
        }
        if (d) done.push(d);
        if (d && stage === STABILITY_BRANCH) {
          const a = parseInstability(d.analysis);
          if (a && finite(d.density)) stability.push({ replicate: r, level: k, density: d.density, ...a });
          else ignoredAnalyses.push(stagePath(r, k, stage));
        }
        const failed = d ? null : readFailed(sdir)?.message ?? null;
        const state: StageState = d ? 'done' : problems.length ? 'damaged' : failed !== null ? 'failed' : fs.existsSync(sdir) ? 'in_progress' : 'pending';
        stages.push({
          replicate: r, level: k, stage, state, ...(failed !== null ? { message: failed } : {}),
          density: d ? d.density : state === 'in_progress' || state === 'failed' ? maskDensity(path.join(sdir, FILES.mask)) : null,
        });
      }
    }
  }
  const run = path.basename(path.resolve(dir));
  return {
    dir, run, hparams, levels, replicates, branches, main, labels,
    summary: buildSummary({ run, hparams: hparams.identity, seed, replicates, levels, branches, main }, done),
    stages,
    curves: loadCurves(dir, replicates, levels, stages, main),
    mask: loadMaskGrids(dir, levels, main),
    stability, ignoredAnalyses, damaged,
    costs: done.map(stageCost),
  };
}

/**
 * A short label for a run from the hyperparameters that set it apart from `others`: how it
 * finds its masks ('iterative', 'one-shot', 'early-bird iterative', 'at init: snip', 'transferred from <run>'),
 * the strategy when runs differ in it, then any other differing hyperparameter.
 */
export function runLabel(run: RunData, others: RunData[]): string {
  const id = run.hparams.identity;
  const differs = (k: string, among = others) => among.some((o) => JSON.stringify(o.hparams.identity[k]) !== JSON.stringify(id[k]));
  // Strategies at initialisation are named by their own base.
  const afterTraining = others.filter((o) => o.hparams.identity.atInit !== true);
  const strategy = String(id.strategy ?? 'magnitude_layerwise');
  const base = id.transferFrom !== undefined
    ? `transferred from ${String(id.transferFrom)}`
    : id.atInit === true ? `at init: ${strategy}` : `${id.earlyBird === true ? 'early-bird ' : ''}${id.oneShot === true ? 'one-shot' : 'iterative'}${differs('strategy', afterTraining) ? ` ${strategy}` : ''}`;
  // Named in the base, or different in every run of a ladder; the early-bird settings only where runs with it differ in them.
  const skip = new Set(['oneShot', 'levels', 'targetDensity', 'atInit', 'densities', 'strategy', 'transferFrom', 'earlyBird']);
  const earlyBirds = others.filter((o) => o.hparams.identity.earlyBird === true);
  for (const k of ['earlyBirdEpsilon', 'earlyBirdEvery']) if (id.earlyBird !== true || !differs(k, earlyBirds)) skip.add(k);
  const keys = new Set(others.flatMap((o) => Object.keys(o.hparams.identity)).concat(Object.keys(id)));
  const extra: string[] = [];
  for (const k of [...keys].sort()) {
    if (skip.has(k) || !differs(k)) continue;
    extra.push(`${k}=${id[k] === undefined ? 'default' : Array.isArray(id[k]) ? (id[k] as unknown[]).join(',') : String(id[k])}`);
  }
  return extra.length ? `${base} (${extra.join(', ')})` : base;
}
