import type { StageResult } from './layout.js';

/**
 * The summary of a lottery run, built from its finished stages (done.json files) only: so
 * it is the same whether a run went straight through or was killed and resumed, and the
 * report, which reads the store, builds exactly what the runner writes to summary.json.
 */
export const METRICS = ['earlyStopIteration', 'earlyStopTestAccuracy', 'finalTestAccuracy', 'earlyStopValLoss'] as const;
export type Metric = (typeof METRICS)[number];

export interface Stats { mean: number; min: number; max: number; n: number }
export type StageRow = Pick<StageResult, 'density' | Metric>;

export interface LevelRow extends StageRow {
  level: number;
  /** The controls' rows at this level, by branch name. */
  branches: Record<string, StageRow>;
}

export interface LevelStats {
  level: number;
  density: Stats;
  main: Record<Metric, Stats>;
  branches: Record<string, Record<Metric, Stats>>;
}

export interface LotterySummary {
  run: string;
  hparams: unknown;
  /** Levels per replicate the run has (the most any command on it asked for), and whether all of them are done. */
  levels: number;
  complete: boolean;
  replicates: Array<{ replicate: number; seed: number; levels: LevelRow[] }>;
  /** Mean/min/max across replicates, per level. */
  aggregate: LevelStats[];
}

/** What a summary covers: the run's shape as recorded (every command on it: the most levels and replicates, all branches). */
export interface SummaryShape {
  readonly run: string;
  readonly hparams: unknown;
  /** Seed of replicate 0 (replicate r uses seed + r). */
  readonly seed: number;
  readonly replicates: number;
  readonly levels: number;
  /** The control branches trained at every pruned level. */
  readonly branches: readonly string[];
  /** The ticket's branch name. */
  readonly main: string;
}

export function stats(values: number[]): Stats {
  return {
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    min: Math.min(...values), max: Math.max(...values), n: values.length,
  };
}

function row(s: StageResult): StageRow {
  return {
    density: s.density, earlyStopIteration: s.earlyStopIteration, earlyStopTestAccuracy: s.earlyStopTestAccuracy,
    finalTestAccuracy: s.finalTestAccuracy, earlyStopValLoss: s.earlyStopValLoss,
  };
}

function metricStats(rows: StageRow[]): Record<Metric, Stats> {
  return Object.fromEntries(METRICS.map((m) => [m, stats(rows.map((r) => r[m]))])) as Record<Metric, Stats>;
}

/** The summary of the finished stages `done` (others, e.g. of replicates or levels beyond the shape, are left out). */
export function buildSummary(shape: SummaryShape, done: readonly StageResult[]): LotterySummary {
  const { replicates, levels, branches, main } = shape;
  const stages = done.filter((s) => s.replicate < replicates && s.level <= levels);
  const reps: LotterySummary['replicates'] = [];
  for (let r = 0; r < replicates; r++) {
    const mine = stages.filter((s) => s.replicate === r);
    const levelRows: LevelRow[] = mine.filter((s) => s.stage === main).map((m) => {
      const branchRows: LevelRow['branches'] = {};
      for (const b of branches) {
        const s = mine.find((x) => x.level === m.level && x.stage === b);
        if (s) branchRows[b] = row(s);
      }
      return { level: m.level, ...row(m), branches: branchRows };
    });
    reps.push({ replicate: r, seed: shape.seed + r, levels: levelRows });
  }
  const aggregate: LevelStats[] = [];
  for (let k = 0; k <= levels; k++) {
    const rows = reps.flatMap((r) => r.levels.filter((l) => l.level === k));
    if (rows.length === 0) continue;
    const branchStats: LevelStats['branches'] = {};
    for (const b of branches) {
      const br = rows.flatMap((r) => (r.branches[b] ? [r.branches[b]] : []));
      if (br.length > 0) branchStats[b] = metricStats(br);
    }
    aggregate.push({ level: k, density: stats(rows.map((r) => r.density)), main: metricStats(rows), branches: branchStats });
  }
  const expected = replicates * (1 + levels * (1 + branches.length));
  return {
    run: shape.run, hparams: shape.hparams, levels,
    complete: stages.filter((s) => s.stage === main || (s.level > 0 && branches.includes(s.stage))).length === expected,
    replicates: reps, aggregate,
  };
}
