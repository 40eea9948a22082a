/**
 * The compact program (structured masks: the smaller dense network they leave): which
 * masks compile to it, and that it trains as the graph program does on the same masks —
 * LeNet at 25% of its hidden neurons on MNIST over 50 Adam steps (losses, weights, optimiser
 * state, evaluation), a small Conv-2 without some channels over 10 SGD steps — while
 * speaking the full model's names and shapes; a fresh program loading its state goes on
 * bitwise, and writeBack puts the full-size weights in the model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext, type RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { getDataset } from '../data/registry.js';
import { getModel } from '../models/registry.js';
import { unitChain, zeroInputsFrom, zeroUnit } from '../nn/compact.js';
import { Dropout, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { OptimizerSettings, OptimizerState } from '../nn/optim.js';
import { compileProgram } from './compile.js';
import { GraphProgram } from './graph.js';
import type { Program } from './program.js';

const context = (): RunContext => resolveContext({}, {});
const adam: OptimizerSettings = { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 };
const sgd: OptimizerSettings = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };

/** Masks of `model` keeping round(share · units) units of each hidden layer, chosen at random, and nothing else removed. */
function unitMasks(model: Model, share: number, seed: number): Map<string, Float32Array> {
  const chain = unitChain(model);
  const masks = new Map(model.prunableNames().map((n) => [n, new Float32Array(model.parameter(n).size).fill(1)]));
  const rng = new Rng(seed, 'units');
  chain.forEach((l, i) => {
    if (l.output) return;
    const perm = rng.permutation(l.units);
    for (const j of perm.subarray(Math.round(share * l.units))) {
      zeroUnit(masks.get(l.weight)!, l, j);
      zeroInputsFrom(masks.get(chain[i + 1].weight)!, chain[i + 1], j);
    }
  });
  return masks;
}

function lenet(): Model {
  const model = getModel('lenet_300_100').build();
  model.initialize(new Rng(0, 'init'));
  return model;
}

test('compileProgram: the compact program for masks that remove whole units consistently, else the others', () => {
  const kind = (model: Model, masks?: Map<string, Float32Array>) => compileProgram(model, { masks, optimizer: adam, context: context() }).kind;
  const structured = unitMasks(lenet(), 0.25, 1);
  const p = compileProgram(lenet(), { masks: structured, optimizer: adam, context: context() });
  assert.equal(p.kind, 'compact');
  assert.deepEqual([...p.sparseWeights], ['fc1.weight', 'fc2.weight', 'fc3.weight'], 'each weight costs its density');
  assert.equal(kind(lenet()), 'dense_mlp', 'no masks');
  assert.equal(kind(lenet(), unitMasks(lenet(), 1, 1)), 'dense_mlp', 'masks that remove nothing');
  const stray = new Map(structured);
  const fc2 = Float32Array.from(structured.get('fc2.weight')!);
  fc2[fc2.indexOf(0)] = 1; // one outgoing weight of a removed neuron kept
  stray.set('fc2.weight', fc2);
  assert.notEqual(kind(lenet(), stray), 'compact', 'not structured');
  const rng = new Rng(2, 'mask');
  assert.equal(kind(lenet(), new Map([...structured].map(([n, m]) => [n, m.map(() => (rng.uniform() < 0.05 ? 1 : 0))]))), 'sparse_mlp', 'unstructured');
  const dropout = () => {
    const m = new Model('drop', [['fc1', new Linear(6, 8, 'relu')], ['drop', new Dropout(0.5)], ['fc2', new Linear(8, 3, 'none')]]);
    m.initialize(new Rng(0, 'init'));
    return m;
  };
  assert.equal(kind(dropout(), unitMasks(dropout(), 0.5, 3)), 'graph', 'dropout draws its masks at the full width');
  const conv = getModel('conv2').withWidths!([8, 8, 32, 32]);
  assert.equal(kind(conv, unitMasks(conv, 0.5, 4)), 'compact', 'a conv net without some channels and neurons');
});

/** Every tensor of `got` within `tol` times the largest magnitude of the same tensor in `want`; the same names. */
function assertClose(got: ReadonlyMap<string, Float32Array>, want: ReadonlyMap<string, Float32Array>, tol: number, what: string): void {
  assert.deepEqual([...got.keys()], [...want.keys()], `${what}: names`);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.equal(g.length, w.length, `${what} ${name}: size`);
    let worst = 0, scale = 0;
    for (let i = 0; i < w.length; i++) {
      worst = Math.max(worst, Math.abs(g[i] - w[i]));
      scale = Math.max(scale, Math.abs(w[i]));
    }
    assert.ok(worst <= tol * scale || worst === 0, `${what} ${name}: max diff ${worst} (scale ${scale})`);
  }
}

function steps(p: Program, data: Dataset, batchSize: number, n: number, order: Int32Array, from = 0): number[] {
  const losses = new Float64Array(n);
  assert.equal(p.step({ data, order, from, batchSize }, losses), n);
  return [...losses];
}

const mnist = getDataset('mnist').load(undefined, 0);

test('LeNet at 25% of its hidden neurons on MNIST: the compact program trains as the graph program, 50 Adam steps', () => {
  const masks = unitMasks(lenet(), 0.25, 5);
  const order = new Rng(0, 'data', 0).permutation(mnist.train.length);
  const run = (p: Program) => ({ kind: p.kind, losses: steps(p, mnist.train, 60, 50, order), state: p.state(), opt: p.optimizerState(), val: p.evaluate(mnist.validation) });
  const compact = run(compileProgram(lenet(), { masks, optimizer: adam, context: context() }));
  const graph = run(new GraphProgram(lenet(), { masks, optimizer: adam, context: context() }));
  assert.deepEqual([compact.kind, graph.kind], ['compact', 'graph']);
  compact.losses.forEach((l, s) => assert.ok(Math.abs(l - graph.losses[s]) <= 1e-4 * graph.losses[s], `loss ${s}: ${l} vs ${graph.losses[s]}`));
  assert.ok(compact.losses[49] < compact.losses[0] - 0.5, `the loss falls: ${compact.losses[0]} -> ${compact.losses[49]}`);
  assertClose(compact.state, graph.state, 1e-3, 'weights');
  assert.equal(compact.opt.steps, 50);
  assertClose(compact.opt.arrays, graph.opt.arrays, 1e-3, 'optimiser state');
  for (const [n, m] of masks) assert.ok(compact.state.get(n)!.every((v, i) => m[i] !== 0 || v === 0), `${n}: zero where pruned`);
  assert.ok(Math.abs(compact.val.loss - graph.val.loss) <= 1e-4 * graph.val.loss, `validation loss ${compact.val.loss} vs ${graph.val.loss}`);
  assert.ok(Math.abs(compact.val.accuracy - graph.val.accuracy) <= 2e-4);
});

test('a small Conv-2 without some channels and neurons: the compact program trains as the graph program, 10 SGD steps', () => {
  const build = () => {
    const m = getModel('conv2').withWidths!([8, 8, 32, 32]);
    m.initialize(new Rng(1, 'init'));
    return m;
  };
  const masks = unitMasks(build(), 0.5, 6);
  const rng = new Rng(6, 'data');
  const data = new Dataset(new Float32Array(80 * 3 * 32 * 32).map(() => rng.normal()), Int32Array.from({ length: 80 }, () => rng.int(10)), [3, 32, 32], 10);
  const order = new Rng(0, 'order').permutation(80);
  const run = (p: Program) => ({ kind: p.kind, losses: steps(p, data, 8, 10, order), state: p.state(), opt: p.optimizerState() });
  const compact = run(compileProgram(build(), { masks, optimizer: sgd, context: context() }));
  const graph = run(new GraphProgram(build(), { masks, optimizer: sgd, context: context() }));
  assert.deepEqual([compact.kind, graph.kind], ['compact', 'graph']);
  compact.losses.forEach((l, s) => assert.ok(Math.abs(l - graph.losses[s]) <= 1e-4 * graph.losses[s], `loss ${s}: ${l} vs ${graph.losses[s]}`));
  // A removed unit's bias: zero here, left where it started by the graph program (zero too: Glorot init, zero biases), but weight decay moves neither.
  assertClose(compact.state, graph.state, 1e-4, 'weights');
  assertClose(compact.opt.arrays, graph.opt.arrays, 1e-4, 'optimiser state');
});

test('the compact program: a fresh one loading the state and optimiser state after 7 steps goes on bitwise; writeBack; errors', () => {
  const masks = unitMasks(lenet(), 0.25, 7);
  const order = new Rng(1, 'data', 0).permutation(mnist.train.length);
  const original = compileProgram(lenet(), { masks, optimizer: adam, context: context() });
  steps(original, mnist.train, 60, 7, order);
  const state = original.state(), opt = original.optimizerState();
  assert.deepEqual([...state].map(([n, v]) => [n, v.length]), [...lenet().state()].map(([n, v]) => [n, v.length]), 'full names and sizes');
  const fresh = compileProgram(lenet(), { masks, optimizer: adam, context: context() });
  fresh.load(state);
  fresh.loadOptimizerState(opt);
  assert.deepEqual(steps(fresh, mnist.train, 60, 5, order, 7 * 60), steps(original, mnist.train, 60, 5, order, 7 * 60));
  assert.deepEqual(fresh.state(), original.state());
  assert.deepEqual(fresh.optimizerState(), original.optimizerState());
  const model = lenet();
  const p = compileProgram(model, { masks, optimizer: adam, context: context() });
  p.load(state);
  p.writeBack();
  assert.deepEqual(model.state(), state, 'the model holds the live weights at full size');
  const wrong: OptimizerState = { steps: 1, arrays: new Map([...opt.arrays].map(([k, a]) => [k, k === 'fc2.bias.exp_avg' ? a.subarray(1) : a])) };
  assert.throws(() => p.loadOptimizerState(wrong), /optimizer state: 'fc2.bias.exp_avg' has 99 values, expected 100/);
  assert.throws(() => compileProgram(lenet(), { masks, optimizer: null, context: context() }).loadOptimizerState(opt), /evaluation only/);
  assert.throws(() => p.load(new Map([...state].filter(([n]) => n !== 'fc3.bias'))), /missing fc3.bias/);
});
