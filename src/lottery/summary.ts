import path from 'node:path';
import { writeJsonAtomic } from '../store/atomic.js';
import { FILES, listStages } from '../store/layout.js';
import { buildSummary, type LotterySummary, type SummaryShape } from '../store/summary.js';

export type { LevelRow, LevelStats, LotterySummary, StageRow, Stats } from '../store/summary.js';

/** Builds the summary of a run from its finished stages on disk and writes summary.json. */
export function writeSummary(runDir: string, shape: SummaryShape): LotterySummary {
  const summary = buildSummary(shape, listStages(runDir));
  writeJsonAtomic(path.join(runDir, FILES.summary), summary);
  return summary;
}
