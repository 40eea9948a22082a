import fs from 'node:fs';
import path from 'node:path';

/** The report's file names inside the output directory. */
export const REPORT_FILES = {
  html: 'report.html',
  png: (figureId: string) => `fig-${figureId}.png`,
} as const;

/** Whether `name` is one of the files a report writes (report.html, fig-<id>.png). */
export function isReportFile(name: string): boolean {
  return name === REPORT_FILES.html || /^fig-[a-z0-9-]+\.png$/.test(name);
}

/** Removes the report files in `dir` (a report that no longer agrees with what is there). */
export function removeReport(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) if (isReportFile(f)) fs.rmSync(path.join(dir, f), { force: true });
}
