/**
 * Training a network with batch norm and a residual block (a small ResNet on synthetic
 * 3×8×8 images): the running statistics are state — in every checkpoint, in the weights
 * kept for rewinding (as they were at that iteration), restored on resume to the
 * uninterrupted run's bytes — and evaluation runs in evaluation mode, on the running
 * statistics, leaving them alone, in the background thread as in the trainer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext } from '../backend/index.js';
import { Rng } from '../core/rng.js';
import { Dataset, type Splits } from '../data/dataset.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import { BatchNorm2d, GlobalAvgPool2d } from '../nn/norm.js';
import type { OptimizerSettings } from '../nn/optim.js';
import { BasicBlock } from '../nn/residual.js';
import { compileProgram } from '../program/compile.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor, noGrad } from '../tensor/tensor.js';
import { parseCheckpointEvery, type TrainCheckpoint } from './checkpoint.js';
import { train, type TrainOptions } from './train.js';

/** conv-BN-ReLU 3→4, a downsampling block 4→8 (projection shortcut), an identity block, GAP, fc 8→3. */
function tinyResnet(): Model {
  const m = new Model('tiny_resnet', [
    ['conv', new Conv2d(3, 4, 3, { padding: 1, bias: false, init: 'kaiming' })],
    ['bn', new BatchNorm2d(4, 'relu')],
    ['block1', new BasicBlock(4, 8, true)],
    ['block2', new BasicBlock(8, 8, false)],
    ['pool', new GlobalAvgPool2d()],
    ['fc', new Linear(8, 3, 'none', 'kaiming')],
  ]);
  m.initialize(new Rng(1, 'init'));
  return m;
}

function splits(): Splits {
  const rng = new Rng(2, 'data');
  const make = (n: number) => new Dataset(new Float32Array(n * 192).map(() => rng.normal()), Int32Array.from({ length: n }, () => rng.int(3)), [3, 8, 8], 3);
  return { name: 'synthetic', train: make(96), validation: make(24), test: make(24) };
}

const sgd: OptimizerSettings = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
const BUFFERS = ['bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked', 'block1.shortcut.1.running_var', 'block2.bn2.running_mean'];

test('batch-norm buffers: kept for rewinding as they were, in every checkpoint, restored on resume to the uninterrupted bytes', () => {
  const context = resolveContext({ threads: 1 }, {});
  const data = splits();
  // 12 iterations an epoch; 30 iterations, evaluations every 5, the state kept at 7.
  const base = (model: Model): TrainOptions => ({ model, data, iterations: 30, batchSize: 8, optimizer: sgd, seed: 3, evalEvery: 5, keepStateAt: 7, context, backgroundEval: false });
  const clean = tinyResnet();
  const expected = train(base(clean));
  const final = clean.state();
  assert.equal(final.get('bn.num_batches_tracked')![0], 30, 'one tracked batch per step');
  assert.equal(expected.keptState!.get('bn.num_batches_tracked')![0], 7, 'the rewind weights hold the statistics of iteration 7');
  assert.notDeepEqual(expected.keptState!.get('bn.running_mean'), final.get('bn.running_mean'));

  const taken: TrainCheckpoint[] = [];
  assert.throws(() => train({
    ...base(tinyResnet()), onEval: (p) => { if (p.iteration === 25) throw new Error('crash'); },
    checkpoints: { every: parseCheckpointEvery('10it'), save: (cp) => taken.push(cp), now: () => 0 },
  }), /crash/);
  assert.deepEqual(taken.map((c) => c.iteration), [10, 20]);
  for (const cp of taken) {
    for (const b of BUFFERS) assert.ok(cp.weights.has(b), `the checkpoint at ${cp.iteration} holds ${b}`);
    assert.equal(cp.weights.get('block2.bn1.num_batches_tracked')![0], cp.iteration);
  }
  const resumed = tinyResnet();
  const result = train({ ...base(resumed), checkpoints: { every: null, resume: taken[1], save: () => assert.fail('no checkpoints with every: null') } });
  assert.deepEqual(result.curve, expected.curve, 'the curve');
  assert.deepEqual(resumed.state(), final, 'weights and running statistics');
  assert.deepEqual(result.keptState, expected.keptState);
});

test('evaluation runs in evaluation mode on the running statistics, leaves them alone, and the background thread agrees', () => {
  const context = resolveContext({ threads: 2 }, {});
  const data = splits();
  const run = (backgroundEval: boolean) => {
    const model = tinyResnet();
    const result = train({ model, data, iterations: 24, batchSize: 8, optimizer: sgd, seed: 4, evalEvery: 1, context, backgroundEval });
    return { result, state: model.state(), model };
  };
  const sync = run(false), background = run(true);
  assert.equal(background.result.backgroundEval, true);
  assert.deepEqual(background.result.curve, sync.result.curve, 'the same points from the evaluation thread');
  assert.deepEqual(background.state, sync.state, 'evaluating moved no running statistic');

  const model = sync.model;
  const program = compileProgram(model, { optimizer: null, context });
  const before = model.state();
  const got = program.evaluate(data.test);
  assert.deepEqual(model.state(), before);
  assert.equal(model.training, true, 'the model is back in training mode');
  // By hand, in evaluation mode: the loss of the running statistics, not of the batch's.
  model.eval();
  const x = new Tensor(data.test.images, [data.test.length, 3, 8, 8]);
  const loss = noGrad(() => softmaxCrossEntropy(model.forward(x), data.test.labels)).data[0];
  model.train();
  assert.ok(Math.abs(got.loss - loss) <= 1e-6 * Math.abs(loss), `evaluate() ${got.loss} vs eval-mode forward ${loss}`);
  const trainMode = noGrad(() => softmaxCrossEntropy(tinyResnetLoaded(before).forward(x), data.test.labels)).data[0];
  assert.notEqual(got.loss, trainMode, 'batch statistics would give another loss');
});

function tinyResnetLoaded(state: ReadonlyMap<string, Float32Array>): Model {
  const m = tinyResnet();
  m.loadState(state);
  return m;
}
