import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { activeContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { FILES } from '../store/layout.js';
import { loadSafetensors } from '../store/safetensors.js';
import { loadSplits } from '../training/run.js';
import { resolveLottery } from './hparams.js';
import { planLottery } from './plan.js';
import { prepareRun, runLottery, summarizeRun } from './runner.js';
import { experimentOf, runStage } from './stage.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-plan-'));

test('the plan of 3 levels, 2 replicates and both controls: every stage, its inputs and its dependencies', () => {
  const h = resolveLottery({ levels: 3, replicates: 2, branches: ['reinit', 'random_prune'], root: tmp() });
  const plan = planLottery(h);
  assert.equal(plan.length, 2 * (1 + 3 * 3));
  const byId = new Map(plan.map((s) => [s.id, s]));
  assert.equal(byId.size, plan.length, 'ids are unique');
  for (const r of [0, 1]) {
    const dense = byId.get(`replicate_${r}/level_0/main`)!;
    assert.deepEqual([dense.level, dense.branch, dense.seed, dense.deps, dense.keepRewind], [0, 'main', r, [], false]);
    for (let k = 1; k <= 3; k++) {
      for (const b of ['main', 'reinit', 'random_prune']) {
        const s = byId.get(`replicate_${r}/level_${k}/${b}`);
        assert.ok(s, `replicate ${r} level ${k} ${b}`);
        assert.deepEqual(s.deps, [`replicate_${r}/level_${k - 1}/main`], `${s.id}: needs the previous level's ticket only`);
        assert.deepEqual([s.replicate, s.level, s.branch, s.seed], [r, k, b, r]);
        assert.match(s.inputs, /magnitude_layerwise pruning of level \d's trained weights; reset to θ0/);
      }
    }
  }
  // Every stage comes after its dependencies.
  const seen = new Set<string>();
  for (const s of plan) {
    for (const d of s.deps) assert.ok(seen.has(d), `${s.id} planned before ${d}`);
    seen.add(s.id);
  }
  // Rewinding: the dense stage keeps its weights at the rewind step and later levels also need it.
  const rewinding = planLottery(resolveLottery({ levels: 2, rewindStep: '100it', root: tmp() }));
  assert.equal(rewinding[0].keepRewind, true);
  assert.deepEqual(rewinding.find((s) => s.id === 'replicate_0/level_2/main')!.deps, ['replicate_0/level_1/main', 'replicate_0/level_0/main']);
  assert.deepEqual(rewinding.find((s) => s.id === 'replicate_0/level_1/main')!.deps, ['replicate_0/level_0/main']);
});

test('runStage on every stage in a random valid order gives the sequential run\'s summary and files', () => {
  const base = { steps: '30it', evalEvery: 10, levels: 3, replicates: 2, branches: ['reinit', 'random_prune'] };
  const sequential = runLottery(resolveLottery({ ...base, root: tmp() }));
  const h = resolveLottery({ ...base, root: tmp() });
  const exp = experimentOf(h);
  prepareRun(exp);
  const plan = planLottery(h);
  const done = new Set<string>();
  const rng = new Rng(11, 'order');
  const context = activeContext();
  const splits = new Map<number, ReturnType<typeof loadSplits>>();
  const order: string[] = [];
  while (done.size < plan.length) {
    const ready = plan.filter((s) => !done.has(s.id) && s.deps.every((d) => done.has(d)));
    const s = ready[rng.int(ready.length)];
    const { skipped } = runStage(exp, s, {
      context,
      splits: (seed) => splits.get(seed) ?? splits.set(seed, loadSplits({ ...h.training, seed })).get(seed)!,
    });
    assert.equal(skipped, false);
    done.add(s.id);
    order.push(s.id);
  }
  assert.notDeepEqual(order, plan.map((s) => s.id), 'the order differs from the plan\'s');
  const summary = summarizeRun(exp);
  const strip = (x: unknown) => JSON.parse(JSON.stringify(x));
  assert.deepEqual(strip(summary), strip({ ...sequential.summary }));
  for (const s of plan) {
    for (const f of [FILES.mask, FILES.init, FILES.final]) {
      const a = loadSafetensors(path.join(sequential.runDir, s.id, f)), b = loadSafetensors(path.join(exp.runDir, s.id, f));
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [n, t] of a) assert.deepEqual(b.get(n), t, `${s.id}/${f} ${n}`);
    }
  }
  // A stage whose dependency is not finished refuses to run.
  const fresh = experimentOf(resolveLottery({ ...base, root: tmp() }));
  prepareRun(fresh);
  assert.throws(() => runStage(fresh, plan.find((s) => s.id === 'replicate_1/level_2/reinit')!, { context, splits: (seed) => loadSplits({ ...h.training, seed }) }),
    /stage replicate_1\/level_2\/reinit needs replicate_1\/level_1\/main, which is not finished/);
});

test('the plan of a run pruned at initialisation: each level prunes θ0 to its density, no level waits for another', () => {
  const h = resolveLottery({ atInit: true, strategy: 'synflow', densities: ['0.5', '0.2', '0.05'], branches: ['shuffle', 'reinit'], root: tmp() });
  assert.equal(h.levels, 3);
  const plan = planLottery(h);
  assert.equal(plan.length, 1 + 3 * 3);
  for (const s of plan.filter((x) => x.level > 0)) {
    assert.deepEqual(s.deps, [], `${s.id}: no dependency`);
    assert.match(s.inputs, /synflow pruning of θ0 to (50\.0|20\.0|5\.0)% of the weights/);
  }
  assert.throws(() => resolveLottery({ atInit: true, densities: ['0.5'] }), /--at-init needs a strategy that prunes at initialisation \(magnitude_init, snip, synflow, grasp\); magnitude_layerwise prunes trained weights/);
  assert.throws(() => resolveLottery({ atInit: true, strategy: 'snip' }), /--at-init needs --densities/);
  assert.throws(() => resolveLottery({ strategy: 'snip', densities: ['0.5'] }), /--densities gives the levels of --at-init/);
  assert.throws(() => resolveLottery({ atInit: true, strategy: 'snip', densities: ['0.5', '1.5'] }), /--densities: each must be a fraction in \(0, 1\), got '1.5'/);
  assert.throws(() => resolveLottery({ atInit: true, strategy: 'snip', densities: ['0.5'], levels: 3 }), /do not combine it with --levels/);
});

test('a lottery pruned at initialisation on MNIST: each level lands on its density; its controls keep its per-layer counts', () => {
  const h = resolveLottery({ atInit: true, strategy: 'snip', densities: ['0.3', '0.05'], branches: ['shuffle'], steps: '20it', evalEvery: 10, root: tmp() });
  const { summary } = runLottery(h);
  assert.equal(summary.complete, true);
  const levels = summary.replicates[0].levels;
  assert.ok(Math.abs(levels[1].density - 0.3) < 1e-5 && Math.abs(levels[2].density - 0.05) < 1e-5, `densities ${levels.map((l) => l.density)}`);
  assert.ok(Math.abs(levels[2].branches.shuffle.density - 0.05) < 1e-5);
});
