import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import type { LotterySummary } from '../src/lottery/summary.js';
import { loadRun, writeReport, type ReportResult } from '../src/report/index.js';
import { saveSafetensors } from '../src/store/safetensors.js';

/** Debian's chromium; LTH_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.LTH_CHROMIUM ?? '/usr/bin/chromium';
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `lth-report-${tag}-`));
const FIGURES = ['accuracy-vs-iteration', 'early-stop-iteration', 'early-stop-accuracy', 'cost-seconds', 'cost-flops', 'first-layer-mask'];

let runDir = '';
let oneShotDir = '';
let report: ReportResult;

before(async () => {
  const root = tmp('runs');
  const common = { steps: '40it', evalEvery: 40, root };
  runDir = runLottery(resolveLottery({ ...common, levels: 2, branches: ['reinit', 'random_prune'], replicates: 2 })).runDir;
  oneShotDir = runLottery(resolveLottery({ ...common, oneShot: true, targetDensity: 0.5 })).runDir;
  report = await writeReport(runDir, { outDir: tmp('out'), compare: [oneShotDir] });
});

/** Every `data-path="…" data-value="…"` pair of the page (attributes in that order, as html.ts writes them). */
function tableNumbers(html: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const m of html.matchAll(/data-path="([^"]+)" data-value="([^"]+)"/g)) out.set(m[1], [...(out.get(m[1]) ?? []), Number(m[2])]);
  return out;
}

/** Every numeric leaf of an object, by dotted path. */
function leaves(obj: unknown, prefix: string, out = new Map<string, number>()): Map<string, number> {
  if (typeof obj === 'number') out.set(prefix, obj);
  else if (obj && typeof obj === 'object') for (const [k, v] of Object.entries(obj)) leaves(v, `${prefix}.${k}`, out);
  return out;
}

function pngInfo(file: string): { width: number; height: number } {
  const buf = fs.readFileSync(file);
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${file}: PNG signature`);
  assert.equal(buf.subarray(12, 16).toString('latin1'), 'IHDR');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/** Pixels far from white, and distinct colours, of a decoded PNG. */
function ink(png: Buffer): { inked: number; total: number; colours: number } {
  const img = PNG.sync.read(png);
  let inked = 0;
  const colours = new Set<number>();
  for (let i = 0; i < img.data.length; i += 4) {
    const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
    if (r + g + b < 3 * 235) inked++;
    colours.add((r >> 4) << 8 | (g >> 4) << 4 | (b >> 4));
  }
  return { inked, total: img.width * img.height, colours: colours.size };
}

test('report of a finished run: every figure inline and as PNG; the table numbers are summary.json', () => {
  const html = fs.readFileSync(report.html, 'utf8');
  const figures = [...FIGURES, 'compare-early-stop-iteration', 'compare-early-stop-accuracy', 'compare-cost-seconds', 'compare-cost-flops'];
  assert.deepEqual([...report.figures].sort(), [...figures].sort());
  for (const id of figures) {
    const inline = html.match(new RegExp(`<figure id="fig-${id}" data-figure="${id}"><svg[^]*?</svg>`));
    assert.ok(inline, `figure ${id} is inline SVG`);
    assert.ok(inline[0].length > 2000, `figure ${id} has content`);
    const png = path.join(path.dirname(report.html), `fig-${id}.png`);
    assert.ok(report.pngs.includes(png), `${png} reported`);
    const { width, height } = pngInfo(png);
    assert.ok(width >= 600 && width <= 4000 && height >= 250 && height <= 2000, `${id}.png is ${width}x${height}`);
    assert.ok(ink(fs.readFileSync(png)).inked > 5000, `${id}.png is not blank`);
  }
  // Self-contained: nothing fetched from anywhere.
  assert.doesNotMatch(html, /<script|<link|@import|https?:\/\/(?!www\.w3\.org\/)/i);
  assert.match(html, /data-status="complete"/);

  const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as LotterySummary;
  assert.equal(summary.complete, true);
  const shown = tableNumbers(html);
  const expected = new Map([...leaves(summary.replicates, 'replicates'), ...leaves(summary.aggregate, 'aggregate')]);
  let checked = 0;
  for (const [p, v] of expected) {
    if (/\.replicate$/.test(p)) continue; // the row's label
    // n is the same for every metric of a row: the table shows it once, under earlyStopIteration.
    if (/\.n$/.test(p) && !/\.earlyStopIteration\.n$/.test(p)) continue;
    const got = shown.get(p);
    assert.ok(got, `summary.json's ${p} is in the table`);
    for (const g of got) assert.equal(g, v, p);
    checked++;
  }
  for (const p of shown.keys()) {
    const v = p.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], { replicates: summary.replicates, aggregate: summary.aggregate });
    assert.equal(typeof v, 'number', `table cell ${p} names a number of summary.json`);
  }
  // 2 replicates x 3 levels x (main + 2 controls at levels 1, 2) rows, 5 numbers each, + aggregates.
  assert.ok(checked > 100, `checked ${checked} numbers`);
  assert.equal(html.match(/data-stage="\w+" data-state="done"/g)?.length, 2 * (1 + 2 * 3));

  // Hyperparameters and the comparison.
  assert.match(html, /<th>training\.steps<\/th><td><code>40it<\/code>/);
  assert.match(html, /<th>replicates<\/th><td><code>2<\/code>/);
  assert.match(html, /data-series="one-shot"/);
  assert.match(html, /data-series="iterative"/);
});

test('the report in headless Chromium: no console errors, no requests, every figure drawn', { timeout: 60_000 }, async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    const why = `${CHROMIUM} not found (apt-get install chromium): browser check skipped`;
    if (process.env.CI) assert.fail(`${why} — CI must have it`);
    t.skip(why);
    return;
  }
  const { chromium } = await import('playwright-core');
  const userDataDir = tmp('chromium');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(report.html).href, { waitUntil: 'load' });
    assert.deepEqual(problems, []);
    assert.deepEqual(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:')), [], 'no network');
    // One screenshot of the figures' region, then each figure's box counted in it.
    const boxes = new Map<string, { x: number; y: number; width: number; height: number }>();
    for (const id of report.figures) {
      const fig = page.locator(`#fig-${id} svg`);
      const box = await fig.boundingBox();
      assert.ok(box && box.width > 300 && box.height > 150, `${id} laid out: ${JSON.stringify(box)}`);
      boxes.set(id, box);
      const text = await fig.textContent(); // axis titles, legends: real text
      assert.ok(text && text.length > 20, `${id} has text`);
    }
    const top = Math.floor(Math.min(...[...boxes.values()].map((b) => b.y)));
    const bottom = Math.ceil(Math.max(...[...boxes.values()].map((b) => b.y + b.height)));
    const shot = PNG.sync.read(await page.screenshot({ fullPage: true, clip: { x: 0, y: top, width: 1280, height: bottom - top } }));
    const scale = shot.width / 1280;
    for (const [id, b] of boxes) {
      const x0 = Math.floor(b.x * scale), y0 = Math.floor((b.y - top) * scale);
      const crop = new PNG({ width: Math.floor(b.width * scale), height: Math.floor(b.height * scale) });
      PNG.bitblt(shot, crop, x0, y0, crop.width, crop.height, 0, 0);
      const seen = ink(PNG.sync.write(crop));
      assert.ok(seen.inked / seen.total > 0.02, `${id} drawn: ${seen.inked} of ${seen.total} pixels inked`);
      assert.ok(seen.colours > 8, `${id} has colour: ${seen.colours} distinct colours`);
    }
  } finally {
    await context.close();
  }
});

test('a run still in progress: unfinished levels are marked, not counted', async () => {
  const copy = path.join(tmp('partial'), path.basename(runDir));
  fs.cpSync(runDir, copy, { recursive: true });
  // Level 2 of both replicates has not finished: its stages lose done.json (metrics.csv stays, as a partial curve).
  for (const r of [0, 1]) for (const s of ['main', 'reinit', 'random_prune']) fs.rmSync(path.join(copy, `replicate_${r}`, 'level_2', s, 'done.json'));
  // A stage that has not even written its metrics yet.
  fs.rmSync(path.join(copy, 'replicate_1', 'level_2', 'reinit', 'metrics.csv'));
  const r = await writeReport(copy);
  assert.equal(r.complete, false);
  assert.equal(path.dirname(r.html), copy, 'default out dir is the run dir');
  assert.deepEqual([...r.figures].sort(), [...FIGURES].sort());
  const html = fs.readFileSync(r.html, 'utf8');
  assert.match(html, /data-status="partial"[^>]*>in progress: 8 of 14 stages finished/);
  assert.match(html, /<li data-level="2" data-state="in_progress"><strong>level 2: in progress<\/strong>/);
  assert.doesNotMatch(html, /<li data-level="[01]"/, 'finished levels are not listed as unfinished');
  // The curve of level 2 comes from the partial metrics and says so (legend and curve table).
  const curves = html.match(/<figure id="fig-accuracy-vs-iteration"[^]*?<\/figure>/)![0];
  assert.match(curves, /\(partial\)/);
  assert.match(html, /<th class="partial">level 2<br>[^<]*\(partial\)/);
  // Level 2 is in the per-replicate table only as unfinished rows, and absent from the aggregates.
  assert.equal(html.match(/<tr class="partial" data-level="2" data-stage="\w+" data-state="in_progress">/g)?.length, 6);
  assert.doesNotMatch(html, /data-path="aggregate\.2\./);
  assert.doesNotMatch(html, /data-path="replicates\.\d\.levels\.2\./);
  assert.match(html, /level 2 · [\d.]+% \(in progress\)/, 'mask panel of the unfinished level is marked');
  for (const p of r.pngs) assert.ok(pngInfo(p).width > 0);
});

test('report/ reads the store only: no runtime import of training/ or lottery/', () => {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/report');
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.js'))) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)) {
      assert.doesNotMatch(m[1], /\/(training|lottery|nn|tensor|backend|pruning)\//, `${f} imports ${m[1]}`);
    }
  }
});

test('user mistakes: a directory that is not a run', async () => {
  const empty = tmp('empty');
  await assert.rejects(writeReport(empty), /not a lottery run directory \(expected hparams\.json/);
  await assert.rejects(writeReport(path.join(empty, 'nope')), /does not exist/);
  await assert.rejects(writeReport(runDir, { outDir: tmp('twice'), compare: [runDir] }), /--compare .* is the run being reported/);
  await assert.rejects(writeReport(runDir, { outDir: tmp('twice'), compare: [oneShotDir, `${oneShotDir}/`] }), /--compare names .* twice/);
  const link = path.join(tmp('link'), 'same-run');
  fs.symlinkSync(runDir, link);
  await assert.rejects(writeReport(runDir, { outDir: tmp('twice'), compare: [link] }), /--compare .*same-run is the run being reported/);
});

test('a report written again into the same directory without a run compared leaves none of the earlier compare figures', async () => {
  const out = tmp('again');
  const first = await writeReport(runDir, { outDir: out, compare: [oneShotDir] });
  assert.ok(first.pngs.some((p) => path.basename(p).startsWith('fig-compare-')));
  fs.writeFileSync(path.join(out, 'notes.png'), 'a file of the user\'s');
  const second = await writeReport(runDir, { outDir: out });
  assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith('fig-')).sort(), second.pngs.map((p) => path.basename(p)).sort());
  assert.ok(fs.existsSync(path.join(out, 'notes.png')), 'other files stay');
});

test('the mask figure of a layer that reads a convolution: C x H x W from the conv, counts per position', async () => {
  // A synthetic run on disk (no training): conv1 [4,3,3,3] -> conv2 [4,4,3,3] -> fc1 [5, 4*6*6] -> fc2 [2, 5].
  const dir = path.join(tmp('conv'), 'synthetic');
  const shapes: Record<string, number[]> = { 'conv1.weight': [4, 3, 3, 3], 'conv2.weight': [4, 4, 3, 3], 'fc1.weight': [5, 144], 'fc2.weight': [2, 5] };
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const tensors = (fill: (name: string, i: number) => number) => new Map(Object.entries(shapes).map(([n, s]) => [n, { shape: [size(s)], data: Float32Array.from({ length: size(s) }, (_, i) => fill(n, i)) }]));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'hparams.json'), JSON.stringify({ identity: { model: 'conv2' }, resolved: { training: { model: 'conv2', dataset: 'cifar10', steps: '10it', seed: 0 }, levels: 1, branches: [], replicates: 1 } }));
  for (const level of [0, 1]) {
    const sdir = path.join(dir, 'replicate_0', `level_${level}`, 'main');
    // Level 1 keeps fc1's connections from feature-map position p only for output units o <= p % 5, in every channel.
    const mask = tensors((n, i) => (level === 0 || n !== 'fc1.weight' ? 1 : Math.floor(i / 144) <= (i % 36) % 5 ? 1 : 0));
    saveSafetensors(path.join(sdir, 'mask.safetensors'), mask);
    if (level === 0) saveSafetensors(path.join(sdir, 'model_init.safetensors'), new Map(Object.entries(shapes).map(([n, s]) => [n, { shape: s, data: new Float32Array(size(s)) }])));
    fs.writeFileSync(path.join(sdir, 'metrics.csv'), 'iteration,name,value\n0,test_accuracy,0.1\n10,test_accuracy,0.3\n');
    fs.writeFileSync(path.join(sdir, 'done.json'), JSON.stringify({ replicate: 0, level, stage: 'main', density: level ? 0.9 : 1, iterations: 10, earlyStopIteration: 10, earlyStopValLoss: 2, earlyStopValAccuracy: 0.3, earlyStopTestAccuracy: 0.3, finalTestAccuracy: 0.3, seconds: 0, backend: 'none' }));
  }
  const run = loadRun(dir);
  assert.ok(run.mask);
  assert.deepEqual({ layer: run.mask.layer, after: run.mask.after, c: run.mask.channels, h: run.mask.height, w: run.mask.width, max: run.mask.max }, { layer: 'fc1.weight', after: 'conv2', c: 4, h: 6, w: 6, max: 20 });
  assert.deepEqual(run.mask.levels[0].counts, new Array(36).fill(20));
  assert.deepEqual(run.mask.levels[1].counts, Array.from({ length: 36 }, (_, p) => 4 * ((p % 5) + 1)));
  // The heatmap's values: per position, the fraction of its 20 connections kept over fc1's density at the level.
  const kept = run.mask.levels[1].counts.reduce((a, b) => a + b, 0);
  assert.equal(run.mask.levels[1].layerDensity, kept / 720);
  assert.deepEqual(run.mask.levels[1].relative, run.mask.levels[1].counts.map((c) => c / 20 / (kept / 720)));
  assert.deepEqual(run.mask.levels[0].relative, new Array(36).fill(1));
  const r = await writeReport(dir);
  assert.equal(r.complete, true);
  assert.match(fs.readFileSync(r.html, 'utf8'), /Mask of the first fully connected layer \(fc1\.weight, reading conv2&#39;s 4×6×6 output\)/);
});

test('a stage that failed for good (a diverged loss) is shown as failed, with its error, not as in progress', async () => {
  const h = resolveLottery({ steps: '20it', evalEvery: 10, levels: 1, optimizer: 'sgd', lr: 1e8, root: tmp('failed') });
  assert.throws(() => runLottery(h), /diverged/);
  const runDir = path.join(h.root, fs.readdirSync(h.root)[0]);
  const run = loadRun(runDir);
  const dense = run.stages.find((s) => s.level === 0)!;
  assert.equal(dense.state, 'failed');
  assert.match(dense.message ?? '', /diverged: loss is NaN/);
  const r = await writeReport(runDir);
  const html = fs.readFileSync(r.html, 'utf8');
  assert.match(html, /data-status="failed">0 of 2 stages finished, 1 failed/);
  assert.match(html, /level 0: failed<\/strong> <span class="detail">\(replicate 0 winning ticket: failed: [^)]*diverged/);
});
