import type { ReportOptions, ReportResult } from './index.js';

export { removeReport } from './files.js';

/**
 * writeReport for the public API, loading the report's modules on first use: Vega and the
 * PNG renderer take a good part of a second to load, which a program that never writes a
 * report should not pay.
 */
export async function writeReport(runDir: string, opts: ReportOptions | string = {}): Promise<ReportResult> {
  return (await import('./index.js')).writeReport(runDir, opts);
}
