/**
 * The fixed costs of a run: what `lth train` spends before and around its first step,
 * phase by phase (bench/startup-child.ts, each run a fresh process), and the wall time of
 * a whole `lth train --steps 1it --eval-every 1` command (two evaluation passes, one step).
 * Medians of --runs runs.
 *
 *   node dist/bench/startup.js [--runs 5] [--json]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;

const phases: Record<string, number[]> = {};
const command: number[] = [];
for (let r = 0; r < runs; r++) {
  const child = spawnSync(process.execPath, [path.join(here, 'startup-child.js')], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`startup child failed: ${child.stderr}`);
  const lines = child.stdout.trim().split('\n');
  for (const [k, v] of Object.entries(JSON.parse(lines[lines.length - 1]) as Record<string, number>)) (phases[k] ??= []).push(v);
  const t0 = performance.now();
  const cli = spawnSync(process.execPath, [path.join(here, '..', 'src', 'cli', 'main.js'), 'train', '--steps', '1it', '--eval-every', '1', '--json'], { encoding: 'utf8' });
  if (cli.status !== 0) throw new Error(`lth train failed: ${cli.stderr}`);
  command.push(performance.now() - t0);
}
const out = { runs, phasesMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, median(v)])), trainCommandMs: median(command) };
const lines = [`fixed costs (median of ${runs} fresh processes, ms):`,
  ...Object.entries(out.phasesMs).map(([k, v]) => `  ${k.padEnd(12)} ${v.toFixed(0).padStart(6)}`),
  `  lth train --steps 1it --eval-every 1 (whole command): ${out.trainCommandMs.toFixed(0)} ms`];
process.stdout.write(`${lines.join('\n')}\n`);
if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
