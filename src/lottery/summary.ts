import path from 'node:path';
import { writeJsonAtomic } from '../store/atomic.js';
import { FILES, listStages, type StageResult } from '../store/layout.js';

export const METRICS = ['earlyStopIteration', 'earlyStopTestAccuracy', 'finalTestAccuracy', 'earlyStopValLoss'] as const;
type Metric = (typeof METRICS)[number];

export interface Stats { mean: number; min: number; max: number; n: number }
export type StageRow = Pick<StageResult, 'density' | Metric>;

export interface LevelRow extends StageRow {
  level: number;
  branches: Partial<Record<'reinit' | 'random_prune', StageRow>>;
}

export interface LevelStats {
  level: number;
  density: Stats;
  main: Record<Metric, Stats>;
  branches: Partial<Record<'reinit' | 'random_prune', Record<Metric, Stats>>>;
}

export interface LotterySummary {
  run: string;
  hparams: unknown;
  /** Levels per replicate the command asked for, and whether all of them are done. */
  levels: number;
  complete: boolean;
  replicates: Array<{ replicate: number; seed: number; levels: LevelRow[] }>;
  /** Mean/min/max across replicates, per level. */
  aggregate: LevelStats[];
}

function row(s: StageResult): StageRow {
  return {
    density: s.density, earlyStopIteration: s.earlyStopIteration, earlyStopTestAccuracy: s.earlyStopTestAccuracy,
    finalTestAccuracy: s.finalTestAccuracy, earlyStopValLoss: s.earlyStopValLoss,
  };
}

export function stats(values: number[]): Stats {
  return {
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    min: Math.min(...values), max: Math.max(...values), n: values.length,
  };
}

function metricStats(rows: StageRow[]): Record<Metric, Stats> {
  return Object.fromEntries(METRICS.map((m) => [m, stats(rows.map((r) => r[m]))])) as Record<Metric, Stats>;
}

/**
 * Builds the summary from the finished stages on disk (so it is the same whether a
 * run went straight through or was killed and resumed) and writes summary.json.
 */
export function writeSummary(runDir: string, hparams: unknown, seed: number, replicates: number, levels: number, branches: readonly string[]): LotterySummary {
  const stages = listStages(runDir).filter((s) => s.replicate < replicates && s.level <= levels);
  const reps: LotterySummary['replicates'] = [];
  for (let r = 0; r < replicates; r++) {
    const mine = stages.filter((s) => s.replicate === r);
    const levelRows: LevelRow[] = mine.filter((s) => s.stage === 'main').map((m) => {
      const branchRows: LevelRow['branches'] = {};
      for (const s of mine) if (s.level === m.level && s.stage !== 'main' && branches.includes(s.stage)) branchRows[s.stage] = row(s);
      return { level: m.level, ...row(m), branches: branchRows };
    });
    reps.push({ replicate: r, seed: seed + r, levels: levelRows });
  }
  const aggregate: LevelStats[] = [];
  for (let k = 0; k <= levels; k++) {
    const rows = reps.flatMap((r) => r.levels.filter((l) => l.level === k));
    if (rows.length === 0) continue;
    const branchStats: LevelStats['branches'] = {};
    for (const b of ['reinit', 'random_prune'] as const) {
      const br = rows.flatMap((r) => (r.branches[b] ? [r.branches[b]!] : []));
      if (br.length > 0) branchStats[b] = metricStats(br);
    }
    aggregate.push({ level: k, density: stats(rows.map((r) => r.density)), main: metricStats(rows), branches: branchStats });
  }
  const expected = replicates * (1 + levels * (1 + branches.length));
  const summary: LotterySummary = {
    run: path.basename(runDir), hparams, levels,
    complete: stages.filter((s) => s.stage === 'main' || (s.level > 0 && branches.includes(s.stage))).length === expected,
    replicates: reps, aggregate,
  };
  writeJsonAtomic(path.join(runDir, FILES.summary), summary);
  return summary;
}
