import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as vega from 'vega';
import { buildFigures, loadRun, parseInstability, relativeToDensity, runLabel, seriesStyle, stabilityLevels, writeReport, type Figure, type ReportResult } from '../src/report/index.js';
import { saveSafetensors } from '../src/store/safetensors.js';

/**
 * Figures built from a synthetic run written by hand in the on-disk format (no training):
 * the first layer's mask relative to each level's density, the stability branch's
 * instability analyses, and a run with more branches than Tableau-10 has colours.
 */

const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `lth-report-fig-${tag}-`));

/** The ticket first, then every control lth has or will have, then three more: 13 branches. */
const BRANCHES = [
  { name: 'main', label: 'winning ticket' },
  { name: 'reinit', label: 'random reinit' },
  { name: 'random_prune', label: 'random pruning' },
  { name: 'reinit_sign', label: 'reinit, signs kept' },
  { name: 'shuffle', label: 'shuffled mask' },
  { name: 'finetune', label: 'fine-tuned' },
  { name: 'invert', label: 'inverted mask' },
  { name: 'small_dense', label: 'small dense' },
  { name: 'stability', label: 'stability (copy a)' },
  { name: 'lr_rewind', label: 'learning-rate rewind' },
  { name: 'extra_1', label: 'extra one' },
  { name: 'extra_2', label: 'extra two' },
  { name: 'extra_3', label: 'extra three' },
];

/** The instability analyses of the fixture, by `r<replicate>k<level>`; r1k2's is malformed. */
const ANALYSES: Record<string, unknown> = {
  r0k1: { kind: 'instability', errorBarrier: 0.01, orderSeeds: [11, 12], path: [{ alpha: 0, testLoss: 0.1, testError: 0.02 }, { alpha: 0.5, testLoss: 0.12, testError: 0.03 }, { alpha: 1, testLoss: 0.1, testError: 0.02 }] },
  r1k1: {
    kind: 'instability', errorBarrier: 0.03, orderSeeds: [21, 22],
    // Listed out of order and with more points than replicate 0: the report sorts by alpha and averages where both have a point.
    path: [{ alpha: 1, testLoss: 0.1, testError: 0.025 }, { alpha: 0, testLoss: 0.1, testError: 0.025 }, { alpha: 0.25, testLoss: 0.1, testError: 0.04 }, { alpha: 0.5, testLoss: 0.2, testError: 0.055 }, { alpha: 0.75, testLoss: null, testError: 0.04 }],
  },
  r0k2: { kind: 'instability', errorBarrier: 0.2, orderSeeds: [11, 12], path: [{ alpha: 0, testLoss: 0.3, testError: 0.05 }, { alpha: 0.5, testLoss: 2, testError: 0.25 }, { alpha: 1, testLoss: 0.3, testError: 0.05 }] },
  r1k2: { kind: 'instability', errorBarrier: 0.4, orderSeeds: [21, 22], path: 'not a path' },
};
const STAB_DENSITY: Record<string, number> = { r0k1: 0.52, r1k1: 0.48, r0k2: 0.2, r1k2: 0.2 };

/**
 * fc1 [4, 16] reads a 4x4 image (each pixel has 4 connections), fc2 [2, 4]. Level 0 keeps
 * everything; level 1 keeps every connection of pixels 0..7 and none of 8..15 (50%); level 2
 * keeps 2 connections of pixel 0 and 1 of pixel 5 (3 of 64).
 */
function fc1Mask(level: number): Float32Array {
  const m = new Float32Array(64);
  for (let o = 0; o < 4; o++) {
    for (let i = 0; i < 16; i++) {
      const keep = level === 0 || (level === 1 && i < 8) || (level === 2 && ((i === 0 && o < 2) || (i === 5 && o === 3)));
      m[o * 16 + i] = keep ? 1 : 0;
    }
  }
  return m;
}

function writeRun(dir: string, opts: { branches?: typeof BRANCHES; analyses?: Record<string, unknown> } = {}): string {
  const branches = opts.branches ?? BRANCHES;
  const analyses = opts.analyses ?? ANALYSES;
  const levels = 2, replicates = 2;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'hparams.json'), JSON.stringify({
    identity: { model: 'lenet_300_100' },
    resolved: { training: { model: 'lenet_300_100', dataset: 'mnist', steps: '20it', seed: 0 }, levels, branches: branches.slice(1).map((b) => b.name), replicates },
    branches,
  }));
  for (let r = 0; r < replicates; r++) {
    for (let k = 0; k <= levels; k++) {
      for (const [bi, b] of branches.entries()) {
        if (k === 0 && bi > 0) continue;
        const sdir = path.join(dir, `replicate_${r}`, `level_${k}`, b.name);
        fs.mkdirSync(sdir, { recursive: true });
        const key = `r${r}k${k}`;
        const density = b.name === 'stability' ? STAB_DENSITY[key] : [1, 0.5, 0.2][k];
        if (b.name === 'main') {
          saveSafetensors(path.join(sdir, 'mask.safetensors'), new Map([['fc1.weight', { shape: [4, 16], data: fc1Mask(k) }], ['fc2.weight', { shape: [2, 4], data: new Float32Array(8).fill(1) }]]));
          if (k === 0) saveSafetensors(path.join(sdir, 'model_init.safetensors'), new Map([['fc1.weight', { shape: [4, 16], data: new Float32Array(64) }], ['fc2.weight', { shape: [2, 4], data: new Float32Array(8) }]]));
          fs.writeFileSync(path.join(sdir, 'metrics.csv'), `iteration,name,value\n0,test_accuracy,0.1\n10,test_accuracy,${0.8 - 0.1 * k}\n20,test_accuracy,${0.9 - 0.1 * k}\n`);
        }
        // Every branch a different accuracy, so that each one's line is somewhere else.
        const acc = 0.9 - 0.02 * bi - 0.05 * k + 0.01 * r;
        const done: Record<string, unknown> = {
          replicate: r, level: k, stage: b.name, density, iterations: 20, earlyStopIteration: 10 + bi, earlyStopValLoss: 0.3, earlyStopValAccuracy: acc,
          earlyStopTestAccuracy: acc, finalTestAccuracy: acc, seconds: 0, backend: 'none',
        };
        if (b.name === 'stability' && analyses[key] !== undefined) done.analysis = analyses[key];
        fs.writeFileSync(path.join(sdir, 'done.json'), JSON.stringify(done));
      }
    }
  }
  return dir;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);
const figure = (figures: Figure[], id: string) => figures.find((f) => f.id === id);
const values = (spec: vega.Spec) => (spec.data![0] as { values: Array<Record<string, unknown>> }).values;
const scale = (spec: vega.Spec, name: string) => spec.scales!.find((s) => s.name === name)! as unknown as Record<string, unknown>;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

let runDir = '';
let report: ReportResult;

before(async () => {
  runDir = writeRun(path.join(tmp('run'), 'synthetic'));
  report = await writeReport(runDir, { outDir: tmp('out') });
});

test('relativeToDensity: the fraction of a pixel\'s connections kept over the layer\'s density', () => {
  // 4 connections per pixel, half the layer kept: 0 of 4 is 0, 2 of 4 is average, 4 of 4 twice that.
  assert.deepEqual(relativeToDensity([0, 2, 4, 2], 4, 0.5), [0, 1, 2, 1]);
  // 3 of 64 kept: one connection of 4 is (1/4) / (3/64) = 16/3 times the average.
  assert.deepEqual(relativeToDensity([2, 1, 0], 4, 3 / 64), [32 / 3, 16 / 3, 0]);
  assert.deepEqual(relativeToDensity([0, 0], 4, 0), [0, 0], 'nothing left: all 0, not NaN');
});

test('the mask heatmap: each level\'s panel relative to its own layer density', () => {
  const run = loadRun(runDir);
  const m = run.mask!;
  assert.ok(m);
  assert.deepEqual({ layer: m.layer, c: m.channels, h: m.height, w: m.width, max: m.max }, { layer: 'fc1.weight', c: 1, h: 4, w: 4, max: 4 });
  assert.deepEqual(m.levels.map((l) => l.layerDensity), [1, 0.5, 3 / 64]);
  assert.deepEqual(m.levels[0].relative, new Array(16).fill(1), 'dense: every pixel average');
  assert.deepEqual(m.levels[1].relative, [...new Array(8).fill(2), ...new Array(8).fill(0)]);
  assert.deepEqual(m.levels[2].relative, Array.from({ length: 16 }, (_, p) => (p === 0 ? 32 / 3 : p === 5 ? 16 / 3 : 0)));
  for (const l of m.levels) {
    close(mean(l.relative), 1, `level ${l.level}: the mean pixel is average`);
    assert.deepEqual(l.relative, l.counts.map((c) => c / m.max / l.layerDensity));
  }
  // The figure draws exactly these values, panel by panel, on one 0..2 scale diverging at 1.
  const f = figure(buildFigures(run), 'first-layer-mask')!;
  const cells = values(f.spec) as Array<{ panel: number; x: number; y: number; v: number }>;
  for (const [i, l] of m.levels.entries()) {
    const mine = cells.filter((c) => c.panel === i).sort((a, b) => a.y - b.y || a.x - b.x);
    assert.deepEqual(mine.map((c) => c.v), l.relative, `panel ${i}`);
  }
  const color = scale(f.spec, 'color');
  assert.deepEqual([color.domain, color.domainMid, color.clamp], [[0, 2], 1, true]);
  assert.equal((f.spec.legends![0] as { title: string }).title, 'kept / layer density');
  assert.match(f.caption, /divided by the layer's density at that level \(kept \/ layer density\): 1 \(white\) is as many as the average input pixel/);
});

test('stability figures: barrier per level and the interpolation path, mean over the replicates with an analysis', () => {
  const run = loadRun(runDir);
  // r1k2's analysis has no path: left out, and said so.
  assert.deepEqual(run.stability.map((a) => `r${a.replicate}k${a.level}`), ['r0k1', 'r0k2', 'r1k1'], 'by replicate, then level');
  assert.deepEqual(run.ignoredAnalyses, ['replicate_1/level_2/stability']);
  assert.deepEqual(run.stability[0].orderSeeds, [11, 12]);
  assert.ok(Number.isNaN(run.stability[2].path.find((p) => p.alpha === 0.75)!.testLoss), 'a null testLoss is NaN');

  const levels = stabilityLevels(run);
  assert.deepEqual(levels.map((l) => [l.level, l.replicates, l.errorBarrier.n]), [[1, [0, 1], 2], [2, [0], 1]]);
  close(levels[0].density, 0.5, 'level 1 density');
  assert.deepEqual([levels[0].errorBarrier.min, levels[0].errorBarrier.max], [0.01, 0.03]);
  close(levels[0].errorBarrier.mean, 0.02, 'level 1 barrier');
  assert.deepEqual(levels[1].errorBarrier, { mean: 0.2, min: 0.2, max: 0.2, n: 1 });

  const figures = buildFigures(run);
  const barrier = figure(figures, 'stability-error-barrier')!;
  const interp = figure(figures, 'stability-interpolation')!;
  assert.ok(barrier && interp);
  // Error barrier in percentage points against percent remaining, on the other figures' log axis.
  const bv = values(barrier.spec) as Array<{ x: number; mean: number; min: number; max: number; n: number }>;
  assert.equal(bv.length, 2);
  for (const [got, want] of bv.map((p, i) => [p, [{ x: 50, mean: 2, min: 1, max: 3, n: 2 }, { x: 20, mean: 20, min: 20, max: 20, n: 1 }][i]] as const)) {
    for (const k of ['x', 'mean', 'min', 'max', 'n'] as const) close(got[k], want[k], `barrier ${k}`);
  }
  assert.equal(scale(barrier.spec, 'x').type, 'log');
  const early = figure(figures, 'early-stop-accuracy')!;
  assert.deepEqual(barrier.spec.axes![0].values, [100, 51.3, 21.1], 'the paper\'s ticks in range');
  assert.equal((barrier.spec.axes![0] as { title: string }).title, (early.spec.axes![0] as { title: string }).title);
  // Interpolation: test error in % per alpha, one line per level, mean where replicates have the point.
  const iv = values(interp.spec) as Array<{ series: string; alpha: number; value: number }>;
  const line = (series: string) => iv.filter((p) => p.series === series).map((p) => [p.alpha, p.value]);
  const expect1 = [[0, 2.25], [0.25, 4], [0.5, 4.25], [0.75, 4], [1, 2.25]];
  const expect2 = [[0, 5], [0.5, 25], [1, 5]];
  for (const [series, want] of [['50.0%', expect1], ['20.0%', expect2]] as const) {
    const got = line(series);
    assert.equal(got.length, want.length, series);
    got.forEach(([a, v], i) => { close(a, want[i][0], `${series} alpha`); close(v, want[i][1], `${series} error at ${a}`); });
  }
  assert.deepEqual(scale(interp.spec, 'x').domain, [0, 1]);
  assert.deepEqual(scale(interp.spec, 'color').domain, ['50.0%', '20.0%']);
});

test('the report with stability figures: PNGs, the table\'s numbers, a warning for the malformed analysis', () => {
  for (const id of ['stability-error-barrier', 'stability-interpolation', 'first-layer-mask']) {
    assert.ok(report.figures.includes(id), id);
    const png = path.join(path.dirname(report.html), `fig-${id}.png`);
    assert.ok(report.pngs.includes(png) && fs.statSync(png).size > 5000, `${png} written`);
  }
  const html = fs.readFileSync(report.html, 'utf8');
  assert.match(html, /<figure id="fig-stability-error-barrier" data-figure="stability-error-barrier"><svg/);
  assert.match(html, /<figure id="fig-stability-interpolation" data-figure="stability-interpolation"><svg/);
  const cell = (level: number, field: string) => Number(html.match(new RegExp(`data-level="${level}" data-field="${field.replace(/[.]/g, '\\.')}" data-value="([^"]+)"`))?.[1]);
  close(cell(1, 'errorBarrier.mean'), 0.02, 'table barrier level 1');
  close(cell(1, 'errorBarrier.max'), 0.03, 'table barrier max level 1');
  close(cell(2, 'errorBarrier.mean'), 0.2, 'table barrier level 2');
  close(cell(1, 'testError@0.5'), 0.0425, 'table error at 0.5, level 1');
  close(cell(2, 'testError@0.5'), 0.25, 'table error at 0.5, level 2');
  assert.ok(report.warnings.some((w) => /1 finished stability stage\(s\) without an instability analysis .*replicate_1\/level_2\/stability/.test(w)), report.warnings.join('\n'));
});

test('stability figures only when a listed stability branch has finished stages with an analysis', () => {
  const ids = (dir: string) => buildFigures(loadRun(dir)).map((f) => f.id).filter((id) => id.startsWith('stability-'));
  assert.deepEqual(ids(runDir), ['stability-error-barrier', 'stability-interpolation']);

  // No stability branch in the run (even with stage directories of that name on disk).
  const without = writeRun(path.join(tmp('nostab'), 'r'), { branches: BRANCHES.filter((b) => b.name !== 'stability') });
  fs.cpSync(path.join(runDir, 'replicate_0', 'level_1', 'stability'), path.join(without, 'replicate_0', 'level_1', 'stability'), { recursive: true });
  assert.deepEqual(ids(without), []);
  assert.deepEqual(loadRun(without).stability, []);

  // Listed, but no stability stage has finished.
  const unfinished = path.join(tmp('unfinished'), 'r');
  fs.cpSync(runDir, unfinished, { recursive: true });
  for (const r of [0, 1]) for (const k of [1, 2]) fs.rmSync(path.join(unfinished, `replicate_${r}`, `level_${k}`, 'stability', 'done.json'));
  assert.deepEqual(ids(unfinished), []);
  assert.deepEqual(loadRun(unfinished).ignoredAnalyses, []);

  // Finished, but every analysis absent, of another kind or malformed: ignored, no crash, no figures.
  const bad = writeRun(path.join(tmp('bad'), 'r'), {
    analyses: {
      r0k1: { kind: 'something_else', errorBarrier: 0.1, path: [{ alpha: 0, testLoss: 0, testError: 0 }, { alpha: 1, testLoss: 0, testError: 0 }] },
      r1k1: { kind: 'instability', errorBarrier: 'big', orderSeeds: [1, 2], path: [] },
      r0k2: [1, 2, 3],
    },
  });
  const badRun = loadRun(bad);
  assert.deepEqual(badRun.stability, []);
  assert.deepEqual(badRun.ignoredAnalyses.sort(), ['replicate_0/level_1/stability', 'replicate_0/level_2/stability', 'replicate_1/level_1/stability', 'replicate_1/level_2/stability']);
  assert.deepEqual(ids(bad), []);
  // The stability branch still counts as a control in the accuracy figures.
  const legend = scale(figure(buildFigures(badRun), 'early-stop-accuracy')!.spec, 'color').domain as string[];
  assert.ok(legend.includes('stability (copy a)'));
});

test('parseInstability: what the report accepts and what it ignores', () => {
  const point = (alpha: unknown, testError: unknown, testLoss: unknown = 0.1) => ({ alpha, testLoss, testError });
  const good = { kind: 'instability', errorBarrier: 0.05, orderSeeds: [1, 2], path: [point(1, 0.1), point(0, 0.1), point(0.5, 0.15)] };
  const parsed = parseInstability(good)!;
  assert.deepEqual(parsed.path.map((p) => p.alpha), [0, 0.5, 1], 'sorted by alpha');
  assert.deepEqual([parsed.errorBarrier, parsed.orderSeeds], [0.05, [1, 2]]);
  assert.equal(parseInstability({ ...good, orderSeeds: 'x' })!.orderSeeds, null, 'odd orderSeeds: kept without them');
  for (const [why, a] of [
    ['absent', undefined], ['null', null], ['a number', 3], ['an array', [good]], ['no kind', { ...good, kind: undefined }],
    ['another kind', { ...good, kind: 'barrier' }], ['barrier a string', { ...good, errorBarrier: '0.05' }], ['barrier null (NaN in JSON)', { ...good, errorBarrier: null }],
    ['no path', { ...good, path: undefined }], ['path an object', { ...good, path: { 0: point(0, 0) } }], ['one point', { ...good, path: [point(0, 0.1)] }],
    ['a point null', { ...good, path: [point(0, 0.1), null] }], ['alpha out of range', { ...good, path: [point(0, 0.1), point(1.5, 0.1)] }],
    ['testError missing', { ...good, path: [point(0, 0.1), { alpha: 1, testLoss: 0 }] }], ['testError a string', { ...good, path: [point(0, 0.1), point(1, '0.1')] }],
  ] as Array<[string, unknown]>) {
    assert.equal(parseInstability(a), null, why);
  }
});

test('every branch of hparams.json in the accuracy figures with its own colour and dash, by branch order', () => {
  const run = loadRun(runDir);
  assert.deepEqual([run.main, ...run.branches], BRANCHES.map((b) => b.name));
  const styles = BRANCHES.map((b) => seriesStyle(run, b.name));
  assert.deepEqual(styles.map((s) => s.label), BRANCHES.map((b) => b.label));
  assert.equal(new Set(styles.map((s) => `${s.color} ${s.dash.join(',')}`)).size, BRANCHES.length, 'no two branches look the same');
  assert.equal(new Set(styles.slice(0, 12).map((s) => s.color)).size, 12, 'twelve branches, twelve colours');
  assert.deepEqual(styles[0].dash, [], 'the ticket is solid');
  // By order: a run with the same branches lists gives the same styles; a branch's style is its place.
  const again = writeRun(path.join(tmp('again'), 'r'), { branches: BRANCHES.slice(0, 4) });
  const fewer = loadRun(again);
  assert.deepEqual(BRANCHES.slice(0, 4).map((b) => seriesStyle(fewer, b.name)), styles.slice(0, 4));
  for (const id of ['early-stop-accuracy', 'early-stop-iteration']) {
    const spec = figure(buildFigures(run), id)!.spec;
    assert.deepEqual(scale(spec, 'color').domain, BRANCHES.map((b) => b.label), `${id}: every branch in the legend, in order`);
    assert.deepEqual(scale(spec, 'color').range, styles.map((s) => s.color));
    assert.deepEqual(scale(spec, 'dash').range, styles.map((s) => s.dash));
    const series = new Set((values(spec) as Array<{ series: string }>).map((v) => v.series));
    assert.deepEqual([...series].sort(), BRANCHES.map((b) => b.label).sort(), `${id}: every branch has points`);
  }
  // In the rendered page too: the SVG legend names every branch.
  const svg = fs.readFileSync(report.html, 'utf8').match(/<figure id="fig-early-stop-accuracy"[^]*?<\/figure>/)![0];
  for (const b of BRANCHES) assert.ok(svg.includes(`>${b.label}</text>`), `${b.label} in the legend`);
});

test('two branches with one label are told apart by name', () => {
  const dir = writeRun(path.join(tmp('clash'), 'r'), { branches: [BRANCHES[0], { name: 'reinit', label: 'control' }, { name: 'shuffle', label: 'control' }] });
  const run = loadRun(dir);
  assert.deepEqual(['reinit', 'shuffle'].map((b) => seriesStyle(run, b).label), ['control (reinit)', 'control (shuffle)']);
  assert.deepEqual(scale(figure(buildFigures(run), 'early-stop-accuracy')!.spec, 'color').domain, ['winning ticket', 'control (reinit)', 'control (shuffle)']);
});

test('compared runs are labelled by how they find their masks, then by what else sets them apart', () => {
  const run = (identity: Record<string, unknown>) => ({ hparams: { identity } }) as unknown as Parameters<typeof runLabel>[0];
  const imp = run({ steps: '10000it' });
  const snip = run({ steps: '10000it', atInit: true, strategy: 'snip', densities: ['0.5'] });
  const global = run({ steps: '10000it', strategy: 'magnitude_global' });
  const moved = run({ steps: '10000it', transferFrom: 'b5ddd087f49fe298', dataset: 'fashion_mnist' });
  assert.equal(runLabel(imp, [snip]), 'iterative');
  assert.equal(runLabel(snip, [imp]), 'at init: snip');
  assert.equal(runLabel(imp, [global]), 'iterative magnitude_layerwise');
  assert.equal(runLabel(global, [imp]), 'iterative magnitude_global');
  assert.equal(runLabel(moved, [imp]), 'transferred from b5ddd087f49fe298 (dataset=fashion_mnist)');
  assert.equal(runLabel(run({ steps: '5000it' }), [imp]), 'iterative (steps=5000it)');
});

test('a chart whose values are all one number (every early stop at iteration 0) has a y axis of numbers, not NaN', async () => {
  const { densityChart, renderSvg } = await import('../src/report/charts.js');
  const points = [100, 51.2, 26.2].map((x) => ({ x, mean: 0, min: 0, max: 0, n: 1 }));
  const svg = await renderSvg(densityChart({ title: 't', yTitle: 'Early-stop iteration', yFormat: '~s', zero: true, series: [{ name: 'winning ticket', color: '#4c78a8', dash: [], points }] }));
  assert.doesNotMatch(svg, /NaN/);
  assert.match(svg, /<text[^>]*>0<\/text>/, 'the axis labels 0');
});
