/**
 * Dynamic sparse training and early-bird tickets: per-layer densities (ERK, uniform),
 * SET's and RigL's drop/regrow (each layer's count constant; the dropped weights and
 * moments zero; RigL's growth the largest gradients, by hand on a tiny layer), the
 * programs' mask changes (in place in the sparse-MLP program, recompiled in the graph
 * program) against each other and against dense-masked training over hundreds of steps,
 * resuming a sparse training from a checkpoint, and the early-bird distance and stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative, resolveContext, type NativeAddon, type RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset, type Splits } from '../data/dataset.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { OptimizerSettings } from '../nn/optim.js';
import { compileProgram, withMasks } from '../program/compile.js';
import type { LiveTraining } from '../training/mask-schedule.js';
import { train, type TrainResult } from '../training/train.js';
import type { TrainCheckpoint } from '../training/checkpoint.js';
import { layerDensities, randomMaskAt } from './densities.js';
import { EarlyBird, maskDistance } from './early-bird.js';
import { sparseSchedule } from './setup.js';
import { SparseTraining, type SparseTrainMethod } from './sparse-training.js';
import { countOnes as ones } from '../pruning/mask.js';

const adam: OptimizerSettings = { name: 'adam', lr: 1e-2, momentum: 0, weightDecay: 0 };
const ctx = (sparse: 'auto' | 'on' | 'off' = 'auto', fused: 'auto' | 'off' = 'auto'): RunContext => resolveContext({ sparse, fused }, {});
const reference = resolveContext({ backend: 'reference' }, {});


function mlp(seed = 0): Model {
  const model = new Model('mlp', [['fc1', new Linear(40, 24, 'relu')], ['fc2', new Linear(24, 16, 'relu')], ['fc3', new Linear(16, 5, 'none')]]);
  model.initialize(new Rng(seed, 'init'));
  return model;
}

function splits(): Splits {
  const rng = new Rng(3, 'data');
  const make = (n: number) => {
    const labels = Int32Array.from({ length: n }, () => Math.floor(rng.uniform() * 5));
    // Classes that can be learnt: a class-dependent mean plus noise.
    const images = new Float32Array(n * 40).map((_, i) => rng.normal() + ((i % 40) % 5 === labels[Math.floor(i / 40)] ? 1.5 : 0));
    return new Dataset(images, labels, [40], 5);
  };
  return { name: 'synthetic', train: make(600), validation: make(100), test: make(100) };
}

test('layer densities: uniform; ERK proportional to (Σ dims)/(Π dims), dense layers capped, the weighted mean exact', () => {
  const layers = [{ name: 'fc1.weight', shape: [300, 784] }, { name: 'fc2.weight', shape: [100, 300] }, { name: 'fc3.weight', shape: [10, 100] }];
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  const mean = (d: Map<string, number>) => layers.reduce((a, l) => a + d.get(l.name)! * size(l.shape), 0) / layers.reduce((a, l) => a + size(l.shape), 0);
  const uniform = layerDensities(layers, 0.1, 'uniform');
  assert.deepEqual([...uniform.values()], [0.1, 0.1, 0.1]);
  const erk = layerDensities(layers, 0.1, 'erk');
  assert.ok(Math.abs(mean(erk) - 0.1) < 1e-12, `weighted mean ${mean(erk)}`);
  // fc3 would get ε·110/1000 > 1: dense; fc1 and fc2 keep the ratio of their scales.
  assert.equal(erk.get('fc3.weight'), 1);
  const ratio = erk.get('fc2.weight')! / erk.get('fc1.weight')!;
  assert.ok(Math.abs(ratio - (400 / 30000) / (1084 / 235200)) < 1e-9, `ratio ${ratio}`);
  const conv = layerDensities([{ name: 'c.weight', shape: [64, 3, 3, 3] }, { name: 'f.weight', shape: [10, 4096] }], 0.05, 'erk');
  assert.ok(Math.abs(conv.get('c.weight')! / conv.get('f.weight')! - (73 / 1728) / (4106 / 40960)) < 1e-9);
  assert.throws(() => layerDensities(layers, 0, 'erk'), /--density must be in \(0, 1\]/);
  const masks = randomMaskAt(layers, erk, new Rng(1, 'm'));
  for (const l of layers) assert.equal(ones(masks.get(l.name)!), Math.round(erk.get(l.name)! * size(l.shape)));
});

/** A schedule's point on fixed weights, gradients and masks. */
function live(masks: Map<string, Float32Array>, weights: Map<string, Float32Array>, gradients?: Map<string, Float32Array>, iteration = 10): LiveTraining {
  return {
    iteration, masks, weights: () => weights,
    smallestWeights: (n, count, out) => reference.backend.selectByMagnitude(weights.get(n)!, masks.get(n)!, 1, count, false, out),
    denseGradients: (names) => new Map(names.map((n) => [n, gradients!.get(n)!])),
  };
}

test('RigL on a tiny layer, by hand: drops the smallest active magnitudes, grows the largest inactive gradients (dropped ones included), ties to the lower index', () => {
  const rigl = new SparseTraining({ method: 'rigl', updateEvery: 10, dropFraction: 0.5, endAt: 1000, seed: 0, backend: reference.backend });
  // α_t at t = 10 of T_end = 1000: 0.25·(1 + cos(π/100)) ≈ 0.4997, so k = ⌊0.4997·6⌋ = 2 of the 6 active.
  const mask = new Float32Array([1, 1, 0, 1, 0, 1, 0, 1, 1, 0]);
  const w = new Float32Array([0.5, -0.1, 0, 0.3, 0, -0.05, 0, 0.1, 0.9, 0]);
  const g = new Float32Array([0, 2, 0.5, 0, -3, 0, 1, 0, 0, 0.7]);
  const action = rigl.at(live(new Map([['w', mask]]), new Map([['w', w]]), new Map([['w', g]])));
  assert.ok(action && action.kind === 'masks');
  // Dropped: |-0.05| at 5, then |-0.1| at 1 and |0.1| at 7 tie: the lower index, 1.
  // Growth among 1, 2, 4, 5, 6, 9 (inactive after the drop): |g| 2 at 1, 3 at 4 are largest.
  assert.deepEqual([...action.masks.get('w')!], [1, 1, 0, 1, 1, 0, 0, 1, 1, 0]);
  assert.deepEqual([...action.grown!.get('w')!], [1, 4]);
  assert.equal(rigl.regrown, 2);
  // No update once the drop fraction has decayed to zero, and no points from T_end on.
  assert.equal(rigl.dropFractionAt(1000), 0);
  assert.equal(rigl.nextPoint(985), 990);
  assert.equal(rigl.nextPoint(990), Infinity);
  assert.ok(Math.abs(rigl.dropFractionAt(500) - 0.25) < 1e-12, 'α/2 at T_end/2');
});

test('SET: random growth among the inactive entries, seeded; dense and empty layers are left alone', () => {
  const rng = new Rng(4, 'x');
  const mask = new Float32Array(500).map(() => (rng.uniform() < 0.2 ? 1 : 0));
  const w = new Float32Array(500).map((_, i) => mask[i] * rng.normal());
  const dense = new Float32Array(20).fill(1);
  const run = () => new SparseTraining({ method: 'set', updateEvery: 5, dropFraction: 0.3, endAt: 100, seed: 9, backend: reference.backend })
    .at(live(new Map([['a', mask], ['b', dense]]), new Map([['a', w], ['b', new Float32Array(20).fill(1)]])));
  const a1 = run(), a2 = run();
  assert.ok(a1 && a1.kind === 'masks' && a2 && a2.kind === 'masks');
  assert.deepEqual(a1.masks.get('a'), a2.masks.get('a'), 'same seed, same masks');
  assert.equal(ones(a1.masks.get('a')!), ones(mask));
  assert.equal(a1.masks.get('b'), dense, 'a dense layer is not updated');
  assert.equal(a1.grown!.has('b'), false);
  for (const i of a1.grown!.get('a')!) assert.equal(a1.masks.get('a')![i], 1);
});

test('selectByMagnitude: the native kernel equals the reference (random, ties, NaN, every count) on 1, 2 and 3 threads, errors name the problem', async () => {
  const native = resolveContext({}, {}).backend;
  if (native.name !== 'native') return;
  const addon = loadNative() as NativeAddon;
  const before = addon.getThreads();
  const rng = new Rng(7, 'sel');
  // The last three take the sampled bound: among the pruned entries, and among kept ones
  // that are a fifth of the layer; the passes over 70,000 and 100,000 entries are split
  // across threads.
  for (const threads of [1, 2, 3]) for (const [n, density] of [[1, 1], [10, 0.5], [257, 0.1], [70000, 0.9], [20000, 0.05], [100000, 0.2]] as const) {
    addon.setThreads(threads);
    const mask = new Float32Array(n).map(() => (rng.uniform() < density ? 1 : 0));
    // Few distinct values, so ties are common; some NaN.
    const values = new Float32Array(n).map(() => (rng.uniform() < 0.01 ? NaN : Math.round(rng.normal() * 20) / 10));
    for (const among of [0, 1] as const) {
      const eligible = [...mask].filter((m) => (m !== 0 ? 1 : 0) === among).length;
      for (const count of new Set([0, Math.min(1, eligible), Math.floor(eligible / 10), Math.floor(eligible / 2), eligible])) {
        for (const largest of [false, true]) {
          const a = new Int32Array(count), b = new Int32Array(count);
          native.selectByMagnitude(values, mask, among, count, largest, a);
          reference.backend.selectByMagnitude(values, mask, among, count, largest, b);
          assert.deepEqual(a, b, `${threads} threads: n ${n} among ${among} count ${count} largest ${largest}`);
        }
      }
    }
  }
  addon.setThreads(before);
  for (const be of [native, reference.backend]) {
    assert.throws(() => be.selectByMagnitude(new Float32Array(3), new Float32Array([1, 0, 0]), 1, 2, false, new Int32Array(2)), /selectByMagnitude: asked for 2 of 1 eligible entries/);
    assert.throws(() => be.selectByMagnitude(new Float32Array(3), new Float32Array(2), 0, 1, false, new Int32Array(1)), /selectByMagnitude: mask has 2 elements/);
  }
});

test('withMasks: in the sparse-MLP program and by recompiling the graph or dense-MLP program, dropped and grown weights and moments are zero, the rest kept', () => {
  const cases: Array<[string, RunContext]> = [
    ['sparse-MLP', ctx('on')], ['graph, packed', ctx('on', 'off')], ['graph, dense masked', ctx('off', 'off')], ['dense-MLP, masked', ctx('off')],
  ];
  for (const [name, context] of cases) {
    const model = mlp(1);
    const layers = model.prunableLayers();
    const masks = randomMaskAt(layers, layerDensities(layers, 0.3, 'uniform'), new Rng(2, 'm'));
    let program = compileProgram(model, { masks, optimizer: adam, context });
    const data = splits().train;
    const order = new Rng(0, 'data', 0).permutation(data.length);
    program.step({ data, order, from: 0, batchSize: 20 }, new Float64Array(5));
    const before = program.state(), opt = program.optimizerState();
    const set = new SparseTraining({ method: 'set', updateEvery: 5, dropFraction: 0.3, endAt: 100, seed: 1, backend: context.backend });
    const action = set.at(live(masks, before));
    assert.ok(action && action.kind === 'masks');
    program = withMasks(program, model, { masks, optimizer: adam, context }, action.masks, action.grown);
    assert.equal(program.kind, name === 'sparse-MLP' ? 'sparse_mlp' : name === 'dense-MLP, masked' ? 'dense_mlp' : 'graph');
    const after = program.state(), optAfter = program.optimizerState();
    for (const [w, next] of action.masks) {
      const grown = new Set<number>(action.grown!.get(w) ?? []);
      const old = masks.get(w)!;
      for (let i = 0; i < next.length; i++) {
        const keep: boolean = next[i] !== 0 && !grown.has(i);
        // === : a zeroed entry may be -0.
        const expect: number = keep ? before.get(w)![i] : 0;
        assert.ok(after.get(w)![i] === expect, `${name} ${w}[${i}] weight ${after.get(w)![i]}, expected ${expect} (old ${old[i]}, new ${next[i]}, grown ${grown.has(i)})`);
        for (const k of ['exp_avg', 'exp_avg_sq']) {
          const got = optAfter.arrays.get(`${w}.${k}`)![i], want = keep ? opt.arrays.get(`${w}.${k}`)![i] : 0;
          assert.ok(got === want, `${name} ${w}.${k}[${i}] ${got}, expected ${want}`);
        }
      }
    }
    assert.equal(optAfter.steps, opt.steps, 'Adam goes on counting');
    // It trains on from there.
    const losses = new Float64Array(5);
    assert.equal(program.step({ data, order, from: 100, batchSize: 20 }, losses), 5);
    assert.ok(losses.every(Number.isFinite));
  }
});

/** A sparse training of the test MLP: 300 iterations, masks updated every 25. */
function sparseRun(method: SparseTrainMethod, context: RunContext, extra: { checkpoint?: (cp: TrainCheckpoint) => void; resume?: TrainCheckpoint } = {}): { result: TrainResult; model: Model } {
  const model = mlp(2);
  const layers = model.prunableLayers();
  const masks = randomMaskAt(layers, layerDensities(layers, 0.25, 'erk'), new Rng(2, 'sparse_mask'));
  const schedule = sparseSchedule(method, { updateEvery: 25, dropFraction: 0.3, updateEnd: 0.75 }, 300, 2, context.backend);
  const result = train({
    model, masks, maskSchedule: schedule, data: splits(), iterations: 300, batchSize: 20, seed: 2, evalEvery: 50, optimizer: adam, context,
    backgroundEval: false,
    checkpoints: extra.checkpoint || extra.resume ? { every: { step: { epochs: 0, iterations: 60 }, seconds: null }, save: extra.checkpoint ?? (() => {}), resume: extra.resume } : undefined,
  });
  return { result, model };
}

test('sparse training on the sparse kernels equals dense-masked training with the same updates, over 300 steps', () => {
  for (const method of ['set', 'rigl'] as const) {
    const sparse = sparseRun(method, ctx('on'));
    const dense = sparseRun(method, ctx('off'));
    assert.equal(sparse.result.program, 'sparse_mlp');
    assert.equal(dense.result.program, 'dense_mlp');
    for (const [n, m] of sparse.result.masks!) assert.deepEqual(m, dense.result.masks!.get(n), `${method}: the same masks at the end (${n})`);
    const a = sparse.model.state(), b = dense.model.state();
    for (const [n, v] of a) {
      const u = b.get(n)!;
      let worst = 0;
      for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i] - u[i]));
      assert.ok(worst < 1e-4, `${method}: ${n} differs by ${worst}`);
    }
    // Every layer kept its count; 300 iterations of 20 at ΔT 25 to 225: updates at 25..200.
    for (const [n, m] of sparse.result.masks!) assert.equal(ones(m), ones(randomMaskAt(mlp(2).prunableLayers(), layerDensities(mlp(2).prunableLayers(), 0.25, 'erk'), new Rng(2, 'sparse_mask')).get(n)!));
    assert.equal(sparse.result.maskUpdates!.count, 8);
    assert.ok(sparse.result.flops.actual < sparse.result.flops.dense, 'sparse kernels cost less than the dense network');
    assert.ok(sparse.result.masks!.get('fc1.weight')!.some((x, i) => x !== randomMaskAt(mlp(2).prunableLayers(), layerDensities(mlp(2).prunableLayers(), 0.25, 'erk'), new Rng(2, 'sparse_mask')).get('fc1.weight')![i]), 'the mask moved');
  }
});

test('a sparse training resumed from a checkpoint gives the uninterrupted run bitwise (masks and schedule state in the checkpoint)', () => {
  const checkpoints: TrainCheckpoint[] = [];
  const whole = sparseRun('rigl', ctx('on'), { checkpoint: (cp) => checkpoints.push(cp) });
  const mid = checkpoints.find((c) => c.iteration === 120);
  assert.ok(mid, `checkpoints at ${checkpoints.map((c) => c.iteration).join(', ')}`);
  assert.ok(mid.masks && mid.schedule, 'the checkpoint holds the masks and the schedule');
  const resumed = sparseRun('rigl', ctx('on'), { resume: mid });
  assert.deepEqual(resumed.model.state(), whole.model.state());
  assert.deepEqual(resumed.result.masks, whole.result.masks);
  assert.deepEqual(resumed.result.flops, whole.result.flops);
});

test('early bird: the normalised Hamming distance, over the kept weights when given; stops at the first draw within ε', () => {
  const a = new Map([['x', new Float32Array([1, 1, 0, 0, 1, 0, 1, 1])]]);
  const b = new Map([['x', new Float32Array([1, 0, 0, 1, 1, 0, 1, 1])]]);
  assert.equal(maskDistance(a, b), 2 / 8);
  assert.equal(maskDistance(a, b, new Map([['x', new Float32Array([1, 1, 1, 1, 0, 0, 0, 0])]])), 2 / 4);
  assert.equal(maskDistance(a, a), 0);
  // A synthetic sequence of masks, one per draw: distances 0.5, 0.25, 0.125, 0 between consecutive ones.
  const sequence = [
    [1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0], [0, 1, 0, 1, 1, 1, 0, 0], [0, 1, 0, 1, 1, 0, 1, 0], [0, 1, 0, 1, 1, 0, 1, 0],
  ].map((m) => new Map([['x', new Float32Array(m)]]));
  let draws = 0;
  const bird = new EarlyBird({ every: 10, epsilon: 0.3, after: 15, draw: () => sequence[draws++] });
  assert.equal(bird.nextPoint(0), 20, 'the first draw comes after `after`');
  const at = (iteration: number) => bird.at(live(new Map(), new Map(), undefined, iteration));
  assert.equal(at(20), null, 'nothing to compare with yet');
  assert.equal(at(30), null, 'distance 0.5');
  assert.deepEqual(at(40), { kind: 'stop' }, 'distance 0.25 < 0.3: the first point within ε');
  assert.equal(bird.drawnAt, 40);
  assert.deepEqual(bird.points, [{ iteration: 30, distance: 0.5 }, { iteration: 40, distance: 0.25 }]);
  // Its state goes through a checkpoint.
  const copy = new EarlyBird({ every: 10, epsilon: 0.3, after: 15, draw: () => sequence[draws++] });
  copy.restore(bird.save());
  assert.deepEqual(copy.points, bird.points);
  assert.throws(() => new EarlyBird({ every: 10, epsilon: 1.5, after: 0, draw: () => a }), /--early-bird-epsilon must be in \(0, 1\)/);
});

test('early bird in train(): training stops at the draw, with an evaluation there', () => {
  const model = mlp(3);
  let draws = 0;
  const full = new Map(model.prunableNames().map((n) => [n, new Float32Array(model.parameter(n).size).fill(1)]));
  const bird = new EarlyBird({ every: 30, epsilon: 0.5, after: 0, draw: () => (draws++, full) });
  const result = train({ model, data: splits(), iterations: 300, batchSize: 20, seed: 3, evalEvery: 50, optimizer: adam, context: ctx(), maskSchedule: bird, backgroundEval: false });
  assert.equal(result.stoppedAt, 60, 'draws at 30 and 60, identical: stop at 60');
  assert.equal(draws, 2);
  assert.deepEqual(result.curve.map((p) => p.iteration), [0, 50, 60]);
  // 40-24-16-5: 2 FLOPs a MAC, 2 passes at the first layer, 3 at the others, 60 iterations of 20.
  assert.deepEqual(result.flops, { actual: 60 * 20 * (2 * 2 * 960 + 2 * 3 * 384 + 2 * 3 * 80), dense: 60 * 20 * (2 * 2 * 960 + 2 * 3 * 384 + 2 * 3 * 80) });
});

test('selectByMagnitudeAt: the native kernel equals the reference (random, ties, NaN, indices in any order, every count) on 1, 2 and 3 threads, errors name the problem', () => {
  const native = resolveContext({}, {}).backend;
  if (native.name !== 'native') return;
  const addon = loadNative() as NativeAddon;
  const before = addon.getThreads();
  const rng = new Rng(8, 'sel_at');
  for (const threads of [1, 2, 3]) for (const [n, spread] of [[1, 1], [10, 3], [257, 2], [20000, 13]] as const) {
    addon.setThreads(threads);
    // Distinct indices in blocks of increasing runs (as a pattern's packed order), few distinct values (ties), some NaN.
    const at = Int32Array.from({ length: n }, (_, i) => (i % spread) * 4 * n + Math.floor(i / spread) * 3 + (i % 2));
    const values = new Float32Array(n).map(() => (rng.uniform() < 0.01 ? NaN : Math.round(rng.normal() * 20) / 10));
    for (const count of new Set([0, 1, Math.floor(n / 10), Math.floor(n / 2), n])) {
      for (const largest of [false, true]) {
        const a = new Int32Array(count), b = new Int32Array(count);
        native.selectByMagnitudeAt(values, at, count, largest, a);
        reference.backend.selectByMagnitudeAt(values, at, count, largest, b);
        assert.deepEqual(a, b, `${threads} threads: n ${n} count ${count} largest ${largest}`);
        // The same as selectByMagnitude among the kept entries of the dense layout.
        const dense = new Float32Array(4 * n * spread), kept = new Float32Array(dense.length);
        at.forEach((f, i) => { dense[f] = values[i]; kept[f] = 1; });
        const c = new Int32Array(count);
        reference.backend.selectByMagnitude(dense, kept, 1, count, largest, c);
        assert.deepEqual(a, c, `n ${n} count ${count} largest ${largest}: as selectByMagnitude`);
      }
    }
  }
  addon.setThreads(before);
  for (const be of [native, reference.backend]) {
    assert.throws(() => be.selectByMagnitudeAt(new Float32Array(3), Int32Array.of(0, 1, 2), 4, false, new Int32Array(4)), /selectByMagnitudeAt: asked for 4 of 3 entries/);
    assert.throws(() => be.selectByMagnitudeAt(new Float32Array(3), Int32Array.of(0, 1), 1, false, new Int32Array(1)), /selectByMagnitudeAt: at has 2 elements/);
    assert.throws(() => be.selectByMagnitudeAt(new Float32Array(2), Int32Array.of(0, -1), 1, false, new Int32Array(1)), /at\[1\] = -1 is negative/);
    assert.throws(() => be.selectByMagnitudeAt(Float32Array.of(1, 2, 3), Int32Array.of(5, 5, 0), 2, false, new Int32Array(2)), /at repeats an index among the 2 entries chosen/);
  }
});
