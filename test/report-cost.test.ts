import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as vega from 'vega';
import { buildFigures, loadRun, writeReport, type Figure, type ReportResult } from '../src/report/index.js';

/**
 * The compute-cost figures, built from synthetic runs written by hand in the on-disk format
 * (no training): accuracy against training seconds and FLOPs (the ticket at the cumulative
 * cost of its levels, the dense network, every other branch at its own cost), the
 * early-bird mask distance, the cost columns of the per-level table; and a run of an older
 * version, without these fields, reported as before.
 */

const made: string[] = [];
const tmp = (tag: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lth-report-cost-${tag}-`));
  made.push(dir);
  return dir;
};
after(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

const LEVELS = 2;
const DENSITY = [1, 0.5, 0.25];
type Branch = { name: string; label: string };
const IMP_BRANCHES: Branch[] = [
  { name: 'main', label: 'winning ticket' }, { name: 'reinit', label: 'random reinit' }, { name: 'rigl', label: 'RigL' }, { name: 'set', label: 'SET' },
];

/** Distinct numbers per stage, so that a sum, a mean or a wrong stage shows. */
const seconds = (r: number, k: number, bi: number) => 10 + 7 * k + 3 * r + 100 * bi + 0.25 * k * k;
const flops = (r: number, k: number, bi: number) => 1e9 * (1 + k + 0.5 * r) * (bi + 1) / (k + 1) ** 0.5;
const accuracy = (r: number, k: number, bi: number) => 0.95 - 0.01 * k - 0.02 * bi + 0.005 * r;

/** Stages of the 'imp' fixture without `flops` (as if written by an older version mid-run): r<replicate>k<level>:<branch>. */
const NO_FLOPS = new Set(['r1k1:main', 'r1k2:reinit']);

/** The early-bird searches of the 'eb' fixture's main stages, by level (replicate 0; replicate 1's distances are 0.02 higher and it draws the same). */
const SEARCH: Array<{ points: Array<{ iteration: number; distance: number }>; drawnAt: number | null }> = [
  { points: [{ iteration: 100, distance: 0.5 }, { iteration: 300, distance: 0.05 }, { iteration: 200, distance: 0.2 }], drawnAt: 300 },
  { points: [{ iteration: 100, distance: 0.3 }, { iteration: 200, distance: 0.08 }], drawnAt: 200 },
  { points: [{ iteration: 100, distance: 0.4 }, { iteration: 200, distance: 0.3 }, { iteration: 300, distance: 0.25 }], drawnAt: null },
];

function writeRun(dir: string, opts: { branches: Branch[]; replicates: number; old?: boolean; earlyBird?: boolean; atInit?: boolean }): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'hparams.json'), JSON.stringify({
    identity: { model: 'lenet_300_100', ...(opts.earlyBird ? { earlyBird: true } : {}), ...(opts.atInit ? { atInit: true } : {}) },
    resolved: { training: { model: 'lenet_300_100', dataset: 'mnist', steps: '300it', seed: 0 }, levels: LEVELS, branches: opts.branches.slice(1).map((b) => b.name), replicates: opts.replicates },
    branches: opts.branches,
  }));
  for (let r = 0; r < opts.replicates; r++) {
    for (let k = 0; k <= LEVELS; k++) {
      for (const [bi, b] of opts.branches.entries()) {
        if (k === 0 && bi > 0) continue;
        const sdir = path.join(dir, `replicate_${r}`, `level_${k}`, b.name);
        fs.mkdirSync(sdir, { recursive: true });
        const acc = accuracy(r, k, bi);
        const done: Record<string, unknown> = {
          replicate: r, level: k, stage: b.name, density: DENSITY[k], iterations: 300, earlyStopIteration: 200, earlyStopValLoss: 0.2, earlyStopValAccuracy: acc,
          earlyStopTestAccuracy: acc, finalTestAccuracy: acc - 0.001, seconds: seconds(r, k, bi), backend: 'none',
        };
        if (!opts.old && !NO_FLOPS.has(`r${r}k${k}:${b.name}`)) done.flops = { actual: flops(r, k, bi), dense: flops(r, 0, bi) * 2 };
        if (!opts.old && (b.name === 'rigl' || b.name === 'set')) done.sparseTraining = { method: b.name, updates: 3, regrown: 40 + k, updateSeconds: 0.5 };
        if (opts.earlyBird && b.name === 'main') {
          const s = SEARCH[k];
          done.earlyBird = { epsilon: 0.1, every: 100, drawnAt: s.drawnAt, points: s.points.map((p) => ({ iteration: p.iteration, distance: p.distance + 0.02 * r })) };
        }
        fs.writeFileSync(path.join(sdir, 'done.json'), JSON.stringify(done));
      }
    }
  }
  return dir;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
const figure = (figures: Figure[] | ReportResult['figures'], id: string) => (figures as Figure[]).find((f) => f.id === id);
const data = (spec: vega.Spec, name: string) => (spec.data!.find((d) => d.name === name) as { values: Array<Record<string, unknown>> }).values;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** The points of one series of a cost figure, by their order along the line. */
const seriesPoints = (f: Figure, name: string) => data(f.spec, 'points').filter((v) => v.series === name).sort((a, b) => Number(a.order) - Number(b.order)) as Array<{ x: number; xMin: number; xMax: number; mean: number; min: number; max: number; n: number; order: number }>;

let impDir = '', ebDir = '', oldDir = '';
let report: ReportResult;

before(async () => {
  const root = tmp('runs');
  impDir = writeRun(path.join(root, 'imp'), { branches: IMP_BRANCHES, replicates: 2 });
  ebDir = writeRun(path.join(root, 'eb'), { branches: [IMP_BRANCHES[0]], replicates: 2, earlyBird: true });
  oldDir = writeRun(path.join(root, 'old'), { branches: IMP_BRANCHES.slice(0, 2), replicates: 2, old: true });
  report = await writeReport(impDir, { outDir: tmp('out'), compare: [ebDir], labels: ['imp', 'eb'] });
});

test('cost figures: the ticket of level k at the cumulative seconds of main stages 0..k, mean over replicates', () => {
  const f = figure(buildFigures(loadRun(impDir)), 'cost-seconds');
  assert.ok(f, 'cost-seconds figure');
  const ticket = seriesPoints(f, 'IMP ticket (cumulative)');
  assert.equal(ticket.length, LEVELS + 1, 'one point per level, level 0 included');
  for (let k = 0; k <= LEVELS; k++) {
    const cumulative = [0, 1].map((r) => {
      let sum = 0;
      for (let j = 0; j <= k; j++) sum += seconds(r, j, 0);
      return sum;
    });
    close(ticket[k].x, mean(cumulative), `level ${k} cumulative seconds`);
    close(ticket[k].xMin, Math.min(...cumulative), `level ${k} min`);
    close(ticket[k].xMax, Math.max(...cumulative), `level ${k} max`);
    close(ticket[k].mean, 100 * mean([0, 1].map((r) => accuracy(r, k, 0))), `level ${k} accuracy`);
    assert.equal(ticket[k].n, 2);
  }
  // Not the stage's own cost: level 2's ticket costs more than its own training.
  assert.ok(ticket[2].x > mean([0, 1].map((r) => seconds(r, 2, 0))) + 20);

  const dense = seriesPoints(f, 'dense (level 0)');
  assert.equal(dense.length, 1, 'dense: one point');
  close(dense[0].x, mean([seconds(0, 0, 0), seconds(1, 0, 0)]), 'dense seconds');

  // The other branches at their own stage's cost, one point per pruned level.
  for (const [bi, name] of [[1, 'random reinit'], [2, 'RigL'], [3, 'SET']] as const) {
    const pts = seriesPoints(f, name);
    assert.deepEqual(pts.map((p) => p.order), [0, 1], `${name}: levels 1 and 2`);
    for (const [i, k] of [1, 2].entries()) {
      close(pts[i].x, mean([0, 1].map((r) => seconds(r, k, bi))), `${name} level ${k} seconds (own, not cumulative)`);
      close(pts[i].mean, 100 * mean([0, 1].map((r) => accuracy(r, k, bi))), `${name} level ${k} accuracy`);
    }
  }
  assert.equal(new Set(data(f.spec, 'points').map((v) => v.series)).size, 5);
});

test('cost figures: a ticket pruned at initialisation costs its own stage only (no level waits for another); the table says (cumulative) once', async () => {
  const dir = writeRun(path.join(tmp('runs'), 'init'), { branches: [IMP_BRANCHES[0]], replicates: 2, atInit: true });
  const f = figure(buildFigures(loadRun(dir)), 'cost-seconds')!;
  const ticket = seriesPoints(f, 'pruning at init ticket');
  assert.equal(ticket.length, LEVELS + 1);
  for (let k = 0; k <= LEVELS; k++) close(ticket[k].x, mean([0, 1].map((r) => seconds(r, k, 0))), `level ${k} own seconds`);
  const html = fs.readFileSync(report.html, 'utf8');
  assert.match(html, /IMP ticket \(cumulative\)</);
  assert.doesNotMatch(html, /\(cumulative\) <small>\(cumulative\)<\/small>/);
});

test('cost figures: FLOPs (log x) from the stages that record them only; a replicate\'s ladder stops at its first stage without', () => {
  const f = figure(buildFigures(loadRun(impDir)), 'cost-flops');
  assert.ok(f, 'cost-flops figure');
  assert.equal((f.spec.scales!.find((s) => s.name === 'x') as { type: string }).type, 'log');
  // Labels of neighbouring 1–9 multiples (40, 50) would print over each other.
  assert.equal((f.spec.axes!.find((a) => a.orient === 'bottom') as { labelOverlap?: unknown }).labelOverlap, 'greedy');
  const ticket = seriesPoints(f, 'IMP ticket (cumulative)');
  // Replicate 1's level 1 has no flops: its levels 1 and 2 leave the FLOPs figure, replicate 0's stay.
  close(ticket[0].x, mean([flops(0, 0, 0), flops(1, 0, 0)]), 'level 0 over both replicates');
  assert.equal(ticket[0].n, 2);
  close(ticket[1].x, flops(0, 0, 0) + flops(0, 1, 0), 'level 1: replicate 0 cumulative');
  close(ticket[2].x, flops(0, 0, 0) + flops(0, 1, 0) + flops(0, 2, 0), 'level 2: replicate 0 cumulative');
  assert.deepEqual([ticket[1].n, ticket[2].n], [1, 1]);
  close(ticket[2].mean, 100 * accuracy(0, 2, 0), 'accuracy of the same replicate');
  const reinit = seriesPoints(f, 'random reinit');
  close(reinit[0].x, mean([flops(0, 1, 1), flops(1, 1, 1)]), 'reinit level 1');
  close(reinit[1].x, flops(0, 2, 1), 'reinit level 2: replicate 1 has no flops');
  close(seriesPoints(f, 'RigL')[1].x, mean([flops(0, 2, 2), flops(1, 2, 2)]), 'rigl level 2');
});

test('early-bird run: its ticket series is early-bird IMP, and the mask distance figure has every point, ε and the draws', () => {
  const figures = buildFigures(loadRun(ebDir));
  const cost = figure(figures, 'cost-seconds')!;
  const ticket = seriesPoints(cost, 'early-bird IMP ticket (cumulative)');
  assert.equal(ticket.length, 3);
  close(ticket[2].x, mean([0, 1].map((r) => seconds(r, 0, 0) + seconds(r, 1, 0) + seconds(r, 2, 0))), 'cumulative seconds');
  assert.equal(seriesPoints(cost, 'dense (level 0, stopped at its early-bird draw)').length, 1);

  const f = figure(figures, 'early-bird-distance');
  assert.ok(f, 'early-bird-distance figure');
  const lines = data(f.spec, 'lines');
  assert.deepEqual([...new Set(lines.map((v) => v.series))], ['level 0 · 100.0%', 'level 1 · 50.0%', 'level 2 · 25.0%']);
  for (const [k, s] of SEARCH.entries()) {
    const got = lines.filter((v) => v.series === [`level 0 · 100.0%`, 'level 1 · 50.0%', 'level 2 · 25.0%'][k]);
    const want = [...s.points].sort((a, b) => a.iteration - b.iteration);
    assert.deepEqual(got.map((v) => v.iteration), want.map((p) => p.iteration), `level ${k}: by iteration`);
    for (const [i, p] of want.entries()) close(Number(got[i].distance), p.distance + 0.01, `level ${k} it ${p.iteration}: mean of the replicates`);
  }
  assert.deepEqual(data(f.spec, 'rules').map((v) => v.epsilon), [0.1]);
  // Each replicate's draw on its own line: levels 0 and 1 drew, level 2 never did.
  const draws = data(f.spec, 'draws').map((v) => `${v.series}@${v.iteration}=${Number(v.distance).toFixed(2)}`).sort();
  assert.deepEqual(draws, ['level 0 · 100.0%@300=0.05', 'level 0 · 100.0%@300=0.07', 'level 1 · 50.0%@200=0.08', 'level 1 · 50.0%@200=0.10']);
  assert.match(f.caption, /Never drawn \(trained the whole budget\): level 2 replicate 0, level 2 replicate 1/);
  assert.equal(figure(buildFigures(loadRun(impDir)), 'early-bird-distance'), undefined, 'no search, no figure');
});

test('the report: cost figures inline and as PNGs, the per-level table\'s seconds, FLOPs and draws, the compared runs\' cost series', () => {
  for (const id of ['cost-seconds', 'cost-flops', 'compare-cost-seconds', 'compare-cost-flops', 'compare-early-bird-distance-1']) {
    assert.ok(report.figures.includes(id), `${id} in ${report.figures.join(', ')}`);
    const png = path.join(path.dirname(report.html), `fig-${id}.png`);
    assert.ok(fs.statSync(png).size > 5000, `${png} has content`);
  }
  assert.ok(!report.figures.includes('early-bird-distance'), 'the primary run has no early-bird search');
  const html = fs.readFileSync(report.html, 'utf8');
  for (const id of ['cost-seconds', 'cost-flops', 'compare-cost-seconds']) {
    assert.match(html, new RegExp(`<figure id="fig-${id}" data-figure="${id}"><svg[^]{2000,}?</svg>`), `${id} inline`);
  }
  // Per-level table: replicate 1, level 2, rigl: its seconds and FLOPs.
  const row = html.match(/<tr data-level="2" data-stage="rigl" data-state="done">.*?<\/tr>/g)!;
  assert.equal(row.length, 2);
  assert.match(row[1], new RegExp(`data-field="seconds" data-value="${seconds(1, 2, 2)}"`));
  assert.match(row[1], new RegExp(`data-field="flops" data-value="${flops(1, 2, 2)}"`));
  assert.match(row[1], /title="rigl: 3 mask updates, 42 connections regrown/);
  const noFlops = html.match(/<tr data-level="1" data-stage="main" data-state="done">.*?<\/tr>/g)![1];
  assert.doesNotMatch(noFlops, /data-field="flops"/, 'replicate 1 level 1 records no flops');
  assert.doesNotMatch(html, /Early-bird ticket drawn at/, 'the primary run has no early-bird column');
  // The cost table has the figure's numbers.
  const cell = (key: string, measure: string, level: number, field: string) => {
    const m = html.match(new RegExp(`<tr data-series="[^"]*" data-key="${key}" data-measure="${measure}" data-level="${level}">.*?data-field="${field.replace('.', '\\.')}" data-value="([^"]+)"`));
    assert.ok(m, `${key} ${measure} level ${level} ${field}`);
    return Number(m[1]);
  };
  close(cell('ticket', 'seconds', 2, 'cost.mean'), mean([0, 1].map((r) => seconds(r, 0, 0) + seconds(r, 1, 0) + seconds(r, 2, 0))), 'table: cumulative seconds');
  close(cell('ticket', 'flops', 1, 'cost.mean'), flops(0, 0, 0) + flops(0, 1, 0), 'table: cumulative FLOPs');

  // Compare mode: each label's ticket at its cumulative cost, rigl and set under 'imp'.
  const cmp = figure(buildFigures(loadRun(impDir), [loadRun(ebDir)], ['imp', 'eb']), 'compare-cost-seconds')!;
  assert.deepEqual([...new Set(data(cmp.spec, 'points').map((v) => v.series))].sort(), ['RigL: imp', 'SET: imp', 'eb', 'imp']);
  for (const label of ['imp', 'eb']) {
    const pts = seriesPoints(cmp, label);
    close(pts[2].x, mean([0, 1].map((r) => seconds(r, 0, 0) + seconds(r, 1, 0) + seconds(r, 2, 0))), `${label}: cumulative seconds at 25%`);
  }
  close(seriesPoints(cmp, 'SET: imp')[0].x, mean([0, 1].map((r) => seconds(r, 1, 3))), 'SET at its own cost');
});

test('the early-bird run\'s own report: the draw column of the per-level table', async () => {
  const r = await writeReport(ebDir, { outDir: tmp('eb-out') });
  assert.ok(r.figures.includes('early-bird-distance'));
  const html = fs.readFileSync(r.html, 'utf8');
  assert.match(html, /<th>Early-bird ticket drawn at \(iteration\)<\/th>/);
  const drawn = [...html.matchAll(/data-field="earlyBirdDrawnAt"( data-value="([^"]+)")?[^>]*>([^<]*)</g)].map((m) => m[3]);
  // Replicates 0 and 1 of levels 0, 1, 2 (the table goes by level, then replicate).
  assert.deepEqual(drawn, ['300', '300', '200', '200', 'not drawn', 'not drawn']);
});

test('a run of an older version (no flops, no early-bird, no sparse training): no new figure, no new column', async () => {
  const run = loadRun(oldDir);
  assert.deepEqual(buildFigures(run).map((f) => f.id), ['accuracy-vs-iteration', 'early-stop-iteration', 'early-stop-accuracy']);
  // Compared with another old run: only the existing compare figures.
  const other = writeRun(path.join(tmp('runs2'), 'old2'), { branches: IMP_BRANCHES.slice(0, 1), replicates: 1, old: true });
  assert.deepEqual(buildFigures(run, [loadRun(other)], ['a', 'b']).map((f) => f.id),
    ['accuracy-vs-iteration', 'early-stop-iteration', 'early-stop-accuracy', 'compare-early-stop-iteration', 'compare-early-stop-accuracy']);
  const r = await writeReport(oldDir, { outDir: tmp('old-out') });
  const html = fs.readFileSync(r.html, 'utf8');
  assert.doesNotMatch(html, /data-field="seconds"|Training time|Training FLOPs|table-cost|cost-seconds/);
  assert.equal(html.match(/<thead><tr><th>Level<\/th><th>Replicate \(seed\)<\/th><th>Network<\/th><th>Weights remaining<\/th>(<th>[^<]+<\/th>){4}<\/tr><\/thead>/g)?.length, 1, 'the per-level table keeps its columns');
});
