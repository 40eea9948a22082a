import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { resolveLottery, runHash } from '../lottery/hparams.js';
import { MAX_SWEEP_RUNS, expandSweep, loadSweep, readSweepFile, resolveSweep } from './spec.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-sweep-'));
const write = (dir: string, name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};
/** That `fn` throws an LthError whose message matches every pattern. */
function throwsLth(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LthError, `an LthError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const base = { steps: '20it', levels: 1, evalEvery: 10 };

test('expandSweep: the cross product in axis order (first axis slowest), labels, values, hparams resolved as lth lottery would', () => {
  const runs = expandSweep({ base, axes: { rate: [0.1, 0.2, 0.3], rewindStep: ['0it', '10it'] }, replicates: 2 }, { root: '/runs' });
  assert.deepEqual(runs.map((r) => r.label), [
    'rate=0.1 rewindStep=0it', 'rate=0.1 rewindStep=10it',
    'rate=0.2 rewindStep=0it', 'rate=0.2 rewindStep=10it',
    'rate=0.3 rewindStep=0it', 'rate=0.3 rewindStep=10it',
  ]);
  assert.deepEqual(runs[3].values, { rate: 0.2, rewindStep: '10it' });
  const expected = resolveLottery({ steps: '20it', levels: 1, evalEvery: 10, rate: 0.2, rewindStep: '10it', replicates: 2, root: '/runs' });
  assert.deepEqual(runs[3].hparams, expected);
  assert.equal(runs[3].hash, runHash(expected));
  assert.equal(runs[3].runDir, path.join('/runs', runHash(expected)));
  assert.equal(new Set(runs.map((r) => r.hash)).size, 6, 'six distinct runs');
  // Lists as arrays or comma-separated strings, numbers as strings: what the flags take.
  const lists = expandSweep({ base: { ...base, branches: 'reinit, random_prune', lr: '0.001' }, axes: { seed: [0, '1'] } });
  assert.deepEqual(lists[1].hparams.branches, ['reinit', 'random_prune']);
  assert.equal(lists[1].hparams.training.lr, 0.001);
  assert.equal(lists[1].hparams.training.seed, 1);
  assert.equal(lists[1].label, 'seed=1');
  assert.equal(lists[0].hparams.root, './lth-runs', 'the default root');
});

test('a sweep is named by its content as parsed: formatting, JSON or YAML and where runs live do not change it', () => {
  const dir = tmp();
  const json = write(dir, 'a.json', JSON.stringify({ base: { steps: '20it', levels: 1 }, axes: { rate: [0.1, 0.2] } }));
  const yaml = write(dir, 'a.yaml', '# the same sweep\nbase:\n  levels: 1\n  steps: 20it\naxes:\n  rate:\n    - 0.1\n    - 0.2\n');
  const other = write(dir, 'b.yml', 'base: { steps: 20it, levels: 1 }\naxes: { rate: [0.1, 0.3] }\n');
  assert.equal(loadSweep(json).hash, loadSweep(yaml, { root: '/elsewhere' }).hash);
  assert.notEqual(loadSweep(json).hash, loadSweep(other).hash);
  assert.deepEqual(loadSweep(yaml).runs.map((r) => r.hash), loadSweep(json).runs.map((r) => r.hash));
});

test('sweep errors: unknown keys with the known ones, a bad value naming the combination and the key, empty axes, too many runs', () => {
  throwsLth(() => expandSweep({ base: { ...base, ratee: 0.1 }, axes: { rate: [0.1] } }), /base: unknown key 'ratee'/, /Known: model, dataset, .*rewindStep.*replicates/);
  throwsLth(() => expandSweep({ base, axes: { 'rewind-step': ['0it'] } }), /axes: unknown key 'rewind-step' \(the flag --rewind-step is the key 'rewindStep'\)/);
  throwsLth(() => expandSweep({ base, axes: { rate: [0.1] }, extra: 1 }), /unknown top-level key 'extra'. Known: base, axes, replicates/);
  throwsLth(() => expandSweep({ base, axes: { rate: [0.1] }, seeds: [0, 1] }), /'seeds' is not a sweep key: .*'replicates: N'.*'seed' axis/);
  // resolveLottery's checks, for the one combination that fails, with the key by its name.
  throwsLth(() => expandSweep({ base, axes: { rate: [0.2, 1.5], rewindStep: ['0it', '10it'] } }, { source: 's.yaml' }),
    /^sweep: s\.yaml: run 3 of 4 \(rate=1\.5 rewindStep=0it\): rate must be in \(0, 1\), got 1\.5$/);
  throwsLth(() => expandSweep({ base, axes: { rewindStep: ['0it', '10bananas'] } }), /run 2 of 2 \(rewindStep=10bananas\): rewindStep: cannot parse '10bananas'/);
  throwsLth(() => expandSweep({ base, axes: { model: ['lenet_300_100', 'lenet'] } }), /run 2 of 2 \(model=lenet\): Unknown model 'lenet'/);
  throwsLth(() => expandSweep({ base, axes: { rate: [0.1, 'lots'] } }), /axes\.rate\[1\]: expected a number, got "lots"/);
  throwsLth(() => expandSweep({ base, axes: { rate: [0.1, Number.NaN] } }), /axes\.rate\[1\]: expected a number, got NaN/);
  throwsLth(() => expandSweep({ base, axes: { lr: [Number.POSITIVE_INFINITY] } }), /axes\.lr\[0\]: expected a number, got Infinity/);
  throwsLth(() => expandSweep({ base: { ...base, levels: 'two' }, axes: { rate: [0.1] } }), /base\.levels: expected an integer, got "two"/);
  throwsLth(() => expandSweep({ base, axes: { strategy: ['magnitude_global', 'biggest'] } }), /axes\.strategy\[1\]: expected one of magnitude_layerwise, .*got "biggest"/);
  throwsLth(() => expandSweep({ base, axes: { rate: [] } }), /axes\.rate is empty/);
  throwsLth(() => expandSweep({ base, axes: { rate: 0.1 } }), /axes\.rate: expected a list of values/);
  throwsLth(() => expandSweep({ base, axes: {} }), /'axes' must map at least one hyperparameter/);
  throwsLth(() => expandSweep({ base, axes: { rate: [0.1, 0.1] } }), /axes\.rate gives 0\.1 twice/);
  throwsLth(() => expandSweep({ base: { ...base, rate: 0.1 }, axes: { rate: [0.2] } }), /rate is both in base and an axis/);
  throwsLth(() => expandSweep({ base: { ...base, replicates: 2 }, axes: { rate: [0.2] }, replicates: 3 }), /replicates is given twice/);
  throwsLth(() => expandSweep({ base, axes: { root: ['a', 'b'] } }), /axes\.root: root is where the runs live/);
  // Combinations that are one run (branches extend a run rather than name another).
  throwsLth(() => expandSweep({ base, axes: { rate: [0.2], branches: [[], ['reinit']] } }), /runs 'rate=0\.2 branches=\[\]' and 'rate=0\.2 branches=reinit' are the same run \([0-9a-f]{16}\): they differ only in branches/);
  throwsLth(() => expandSweep({ base, axes: { rewindStep: ['0it', '0ep'] } }), /runs 'rewindStep=0it' and 'rewindStep=0ep' are the same run \([0-9a-f]{16}\): they differ only in rewindStep, which does not name a run here \(.*two ways to write one value/);
  // Too many: counted before anything is expanded.
  const big = Array.from({ length: 101 }, (_, i) => i);
  throwsLth(() => expandSweep({ base, axes: { seed: big, rate: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95] } }),
    new RegExp(`the axes give 1010 runs \\(seed: 101 x rate: 10\\); a sweep may have at most ${MAX_SWEEP_RUNS}`));
  assert.equal(expandSweep({ base, axes: { seed: big.slice(0, 100), rate: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95] } }).length, 1000);
});

test('sweep files: the extension chooses the parser; parse errors name the file and the line', () => {
  const dir = tmp();
  const yaml = write(dir, 'bad.yaml', 'base:\n  steps: 20it\naxes:\n  rate: [0.1, 0.2\n  levels: 3\n');
  throwsLth(() => readSweepFile(yaml), new RegExp(`^sweep: ${yaml.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:[45]:\\d+: not valid YAML: `));
  const dup = write(dir, 'dup.yml', 'base:\n  steps: 20it\n  steps: 40it\naxes: { rate: [0.1] }\n');
  throwsLth(() => readSweepFile(dup), /dup\.yml:3:\d+: not valid YAML: Map keys must be unique/);
  const two = write(dir, 'two.yml', 'base: { steps: 20it }\naxes: { rate: [0.1] }\n---\nbase: {}\n');
  throwsLth(() => readSweepFile(two), /two\.yml:3:1: a sweep file holds one YAML document \(one base and its axes\); this one has more/);
  const json = write(dir, 'bad.json', '{\n  "base": { "steps": "20it" },\n  "axes": { "rate": [0.1, 0.2], }\n}\n');
  throwsLth(() => readSweepFile(json), /bad\.json:3:\d+: not valid JSON: /);
  const cut = write(dir, 'cut.json', '{\n  "base": {\n');
  throwsLth(() => readSweepFile(cut), /cut\.json:3:1: not valid JSON: /);
  const twice = write(dir, 'twice.json', '{ "axes": {\n  "rate": [0.2, 0.3],\n  "rate": [0.4] } }');
  throwsLth(() => readSweepFile(twice), /twice\.json:3:3: a key is given twice in the same object/);
  throwsLth(() => readSweepFile(write(dir, 'a.toml', 'x = 1')), /expected a \.json, \.yaml or \.yml file/);
  throwsLth(() => readSweepFile(path.join(dir, 'missing.yaml')), /missing\.yaml does not exist/);
  throwsLth(() => loadSweep(write(dir, 'empty.yaml', '# nothing\n')), /empty\.yaml: expected an object with 'base' and 'axes'/);
  // YAML's plain scalars: 500it, lists in flow style, comments.
  const ok = loadSweep(write(dir, 'ok.yml', 'base: { steps: 20it, levels: 1, branches: [reinit] }  # shared\naxes:\n  rewindStep: [0it, 10it]\nreplicates: 2\n'));
  assert.deepEqual(ok.runs.map((r) => [r.label, r.hparams.rewindStep, r.hparams.branches, r.hparams.replicates]), [
    ['rewindStep=0it', '0it', ['reinit'], 2], ['rewindStep=10it', '10it', ['reinit'], 2],
  ]);
  assert.equal(resolveSweep({ base, axes: { rate: [0.1] } }, { root: '/r' }).runs[0].hparams.root, '/r');
});
