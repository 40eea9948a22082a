/**
 * Programs export and import their optimiser state (what a checkpoint keeps beside the
 * weights): on the graph program (dense, and with packed sparse weights), the sparse-MLP
 * program and the dense-MLP program, with Adam and SGD with momentum, a program compiled afresh that loads another's
 * weights and optimiser state after k steps goes on bitwise as the original does; both
 * programs give the same names and sizes (full-size arrays, pruned entries zero) and, up to
 * float summation order, the same values; a state that does not fit is a clear error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext, type RunContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { OptimizerSettings, OptimizerState } from '../nn/optim.js';
import { compileProgram } from './compile.js';
import type { Program } from './program.js';

const adam: OptimizerSettings = { name: 'adam', lr: 1e-2, momentum: 0, weightDecay: 0 };
const sgd: OptimizerSettings = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };

/** A 30-40-12-5 MLP with Glorot weights and masks of density 0.3 on every weight. */
function mlp(): { model: Model; masks: Map<string, Float32Array> } {
  const model = new Model('mlp', [['fc1', new Linear(30, 40, 'relu')], ['fc2', new Linear(40, 12, 'relu')], ['fc3', new Linear(12, 5, 'none')]]);
  model.initialize(new Rng(4, 'init'));
  const rng = new Rng(4, 'mask');
  const masks = new Map(model.prunableNames().map((name) => [name, new Float32Array(model.parameter(name).size).map(() => (rng.uniform() < 0.3 ? 1 : 0))]));
  return { model, masks };
}

function data(): Dataset {
  const rng = new Rng(3, 'data');
  return new Dataset(new Float32Array(200 * 30).map(() => rng.normal()), Int32Array.from({ length: 200 }, () => rng.int(5)), [30], 5);
}

/** The programs to test, by name: what the run settings and masks make of the MLP. */
const PROGRAMS: ReadonlyArray<{ name: string; kind: string; context: () => RunContext; masked: boolean }> = [
  { name: 'sparse-MLP', kind: 'sparse_mlp', context: () => resolveContext({ sparse: 'on' }, {}), masked: true },
  { name: 'graph, packed sparse weights', kind: 'graph', context: () => resolveContext({ sparse: 'on', fused: 'off' }, {}), masked: true },
  { name: 'graph, dense masked weights', kind: 'graph', context: () => resolveContext({ sparse: 'off', fused: 'off' }, {}), masked: true },
  { name: 'dense-MLP, masked', kind: 'dense_mlp', context: () => resolveContext({ sparse: 'off' }, {}), masked: true },
  { name: 'graph, unmasked', kind: 'graph', context: () => resolveContext({ sparse: 'off', fused: 'off' }, {}), masked: false },
  { name: 'dense-MLP, unmasked', kind: 'dense_mlp', context: () => resolveContext({}, {}), masked: false },
];

function compiled(p: (typeof PROGRAMS)[number], optimizer: OptimizerSettings): Program {
  const net = mlp();
  const program = compileProgram(net.model, { masks: p.masked ? net.masks : undefined, optimizer, context: p.context() });
  assert.equal(program.kind, p.kind, p.name);
  return program;
}

function steps(program: Program, d: Dataset, from: number, k: number): number[] {
  const order = new Rng(0, 'order').permutation(d.length);
  const losses: number[] = [];
  for (let s = from; s < from + k; s++) {
    const l = new Float64Array(1);
    program.step({ data: d, order, from: (s % 5) * 40, batchSize: 40 }, l);
    losses.push(l[0]);
  }
  return losses;
}

for (const p of PROGRAMS) {
  for (const optimizer of [adam, sgd]) {
    test(`${p.name} program, ${optimizer.name}: a fresh program loading the weights and optimiser state after 7 steps goes on bitwise`, () => {
      const d = data();
      const original = compiled(p, optimizer);
      steps(original, d, 0, 7);
      const state = original.optimizerState();
      assert.equal(state.steps, 7);
      const names = optimizer.name === 'adam' ? ['exp_avg', 'exp_avg_sq'] : ['momentum_buffer'];
      assert.deepEqual([...state.arrays.keys()], ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias'].flatMap((n) => names.map((k) => `${n}.${k}`)));
      assert.deepEqual([...state.arrays.values()].map((a) => a.length), [1200, 40, 480, 12, 60, 5].flatMap((n) => names.map(() => n)), 'full-size arrays');
      if (p.masked) {
        const mask = mlp().masks.get('fc1.weight')!, exp = state.arrays.get(`fc1.weight.${names[0]}`)!;
        assert.ok(exp.every((v, i) => mask[i] !== 0 || Object.is(v, 0)), 'pruned entries are zero');
        assert.ok(exp.some((v) => v !== 0), 'the state moved');
      }
      // A copy, not the live arrays.
      state.arrays.get(`fc2.bias.${names[0]}`)!.fill(123);
      assert.notEqual(original.optimizerState().arrays.get(`fc2.bias.${names[0]}`)![0], 123);

      const resumed = compiled(p, optimizer);
      resumed.load(original.state());
      resumed.loadOptimizerState(original.optimizerState());
      assert.deepEqual(resumed.optimizerState(), original.optimizerState());
      const a = steps(original, d, 7, 6), b = steps(resumed, d, 7, 6);
      assert.deepEqual(b, a, 'losses');
      assert.deepEqual(resumed.state(), original.state(), 'weights');
      assert.deepEqual(resumed.optimizerState(), original.optimizerState(), 'optimiser state');

      // Without the optimiser state it does not: the test can tell.
      const forgetful = compiled(p, optimizer);
      forgetful.load(original.state());
      steps(original, d, 13, 2);
      steps(forgetful, d, 13, 2);
      assert.notDeepEqual(forgetful.state(), original.state());
    });
  }
}

test('the graph and sparse-MLP programs export the same optimiser state (up to float summation order) and take each other\'s', () => {
  const d = data();
  for (const optimizer of [adam, sgd]) {
    const fused = compiled(PROGRAMS[0], optimizer), graph = compiled(PROGRAMS[1], optimizer);
    steps(fused, d, 0, 5);
    steps(graph, d, 0, 5);
    const a = fused.optimizerState(), b = graph.optimizerState();
    assert.equal(a.steps, b.steps);
    assert.deepEqual([...a.arrays.keys()], [...b.arrays.keys()]);
    for (const [n, x] of a.arrays) {
      const y = b.arrays.get(n)!;
      const scale = Math.max(...y.map(Math.abs));
      assert.ok(x.every((v, i) => Math.abs(v - y[i]) <= 1e-4 * scale + 1e-12), `${optimizer.name} ${n}`);
    }
    // Each takes the other's (both are full size with pruned entries zero).
    graph.loadOptimizerState(a);
    fused.loadOptimizerState(b);
    assert.deepEqual(graph.optimizerState(), a);
    assert.deepEqual(fused.optimizerState(), b);
  }
});

test('an optimiser state that does not fit is a clear error; a program compiled for evaluation has none', () => {
  for (const p of [PROGRAMS[0], PROGRAMS[1], PROGRAMS[4]]) {
    const program = compiled(p, adam);
    const good = program.optimizerState();
    const without = (name: string): OptimizerState => ({ steps: 3, arrays: new Map([...good.arrays].filter(([n]) => n !== name)) });
    assert.throws(() => program.loadOptimizerState(without('fc1.weight.exp_avg_sq')), /optimizer state: missing fc1.weight.exp_avg_sq/, p.name);
    assert.throws(() => program.loadOptimizerState({ steps: 3, arrays: new Map([...good.arrays, ['fc9.weight.exp_avg', new Float32Array(1)]]) }), /unexpected fc9.weight.exp_avg/, p.name);
    assert.throws(() => program.loadOptimizerState({ steps: 3, arrays: new Map([...good.arrays].map(([n, a]) => [n, n === 'fc2.bias.exp_avg' ? new Float32Array(3) : a])) }),
      /'fc2.bias.exp_avg' has 3 values, expected 12/, p.name);
    assert.throws(() => program.loadOptimizerState({ steps: -1, arrays: good.arrays }), /step count must be a non-negative integer/, p.name);
    const sgdState = compiled(p, sgd).optimizerState();
    assert.throws(() => program.loadOptimizerState(sgdState), /missing fc1.weight.exp_avg, .*unexpected fc1.weight.momentum_buffer/, `${p.name}: SGD's state into Adam`);
    const net = mlp();
    const evalOnly = compileProgram(net.model, { masks: net.masks, optimizer: null, context: p.context() });
    assert.throws(() => evalOnly.optimizerState(), /compiled for evaluation only/);
  }
  resolveContext({}, {});
});
