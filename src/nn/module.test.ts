import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../core/rng.js';
import { Dataset } from '../data/dataset.js';
import { decodeSafetensors, encodeSafetensors } from '../store/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import { train } from '../training/train.js';
import { buildModel, buildModule } from './build.js';
import { Dropout, Linear } from './layers.js';
import { Model } from './model.js';
import { Module, Sequential, type ModuleDesc } from './module.js';

/**
 * A module with a buffer: the running mean of its inputs' features over training batches
 * (momentum 0.1, as batch norm keeps its statistics), applied as the identity. Its buffer
 * changes during training and not during evaluation.
 */
class RunningMean extends Module {
  readonly mean: Tensor;

  constructor(readonly features: number) {
    super();
    this.mean = this.registerBuffer('running_mean', Tensor.zeros([features]));
  }

  forward(x: Tensor): Tensor {
    if (this.training) {
      const n = x.shape[0];
      for (let j = 0; j < this.features; j++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += x.data[i * this.features + j];
        this.mean.data[j] = 0.9 * this.mean.data[j] + 0.1 * (s / n);
      }
    }
    return x;
  }

  describe(): ModuleDesc {
    return { type: 'running_mean', features: this.features };
  }
}

function net(): Model {
  return new Model('tiny', [['stats', new RunningMean(6)], ['fc1', new Linear(6, 5, 'relu')], ['drop', new Dropout(0.2)], ['fc2', new Linear(5, 3, 'none')]]);
}

test('a module tree: parameters and buffers by dotted names in order, train/eval mode, prunable weights', () => {
  const m = new Model('nested', [['body', new Sequential([['fc', new Linear(4, 3, 'relu')], ['stats', new RunningMean(3)]])], ['head', new Linear(3, 2, 'none')]]);
  assert.deepEqual(m.namedParameters().map(([n]) => n), ['body.fc.weight', 'body.fc.bias', 'head.weight', 'head.bias']);
  assert.deepEqual(m.namedBuffers().map(([n]) => n), ['body.stats.running_mean']);
  assert.deepEqual([...m.state().keys()], ['body.fc.weight', 'body.fc.bias', 'head.weight', 'head.bias', 'body.stats.running_mean']);
  assert.deepEqual(m.prunableLayers(), [
    { name: 'body.fc.weight', kind: 'linear', shape: [3, 4], output: false },
    { name: 'head.weight', kind: 'linear', shape: [2, 3], output: true },
  ]);
  m.eval();
  assert.ok(m.namedModules().every(([, x]) => !x.training));
  m.train();
  assert.ok(m.namedModules().every(([, x]) => x.training));
  assert.throws(() => m.loadState(new Map([['head.weight', new Float32Array(6)]]), 'checkpoint'),
    /checkpoint: missing body.fc.weight, body.fc.bias, head.bias, body.stats.running_mean/);
  const state = m.state();
  state.set('extra', new Float32Array(1));
  assert.throws(() => m.loadState(state), /unexpected extra/);
  state.delete('extra');
  state.set('head.bias', new Float32Array(3));
  assert.throws(() => m.loadState(state), /tensor 'head.bias' has 3 values, expected 2 \(shape \[2\]\)/);
});

test('a model\'s description rebuilds the same architecture; unknown types are clear errors', () => {
  const m = net();
  const desc = m.describe();
  assert.throws(() => buildModel(desc), /Unknown module type 'running_mean'/);
  const plain = new Model('plain', [['fc1', new Linear(6, 5, 'relu')], ['drop', new Dropout(0.2, 3)], ['fc2', new Linear(5, 3, 'none')]]);
  const again = buildModel(JSON.parse(JSON.stringify(plain.describe())) as ModuleDesc);
  assert.equal(again.name, 'plain');
  assert.deepEqual(again.describe(), plain.describe());
  assert.deepEqual([...again.shapes()], [...plain.shapes()]);
  assert.throws(() => buildModule({ type: 'linear', in: 'six', out: 5 }), /module 'linear': 'in' must be a number, got "six"/);
  assert.throws(() => buildModel({ type: 'linear', in: 6, out: 5 }), /expected a model, got type 'linear'/);
});

test('a module with buffers round-trips through state(), safetensors and a rewind (train\'s keepStateAt)', () => {
  const rng = new Rng(2, 'data');
  const data = new Dataset(new Float32Array(120 * 6).map(() => rng.normal() + 1), Int32Array.from({ length: 120 }, (_, i) => i % 3), [6], 3);
  const splits = { name: 'toy', train: data, validation: data, test: data };
  const run = (iterations: number, keepStateAt?: number) => {
    const m = net();
    m.initialize(new Rng(0, 'init'));
    const r = train({ model: m, data: splits, iterations, batchSize: 20, seed: 1, evalEvery: 5, optimizer: { name: 'adam', lr: 1e-2, momentum: 0, weightDecay: 0 }, keepStateAt });
    return { m, r };
  };
  const { m, r } = run(12, 4);
  const kept = r.keptState!;
  assert.ok(kept.has('stats.running_mean'), 'the rewind state holds the buffer');
  assert.ok(kept.get('stats.running_mean')!.some((v) => v !== 0));
  // The rewind state is the state after 4 iterations, buffer included.
  assert.deepEqual(kept, run(4).m.state());
  // Evaluation leaves the buffer alone: it moved only with training batches.
  assert.notDeepEqual(m.state().get('stats.running_mean'), kept.get('stats.running_mean'));
  // Through safetensors with shapes, and back into a fresh model.
  const bytes = encodeSafetensors(new Map([...m.state()].map(([n, d]) => [n, { shape: m.shapes().get(n)!, data: d }])));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lth-module-')), 'state.safetensors');
  fs.writeFileSync(file, bytes);
  const back = decodeSafetensors(fs.readFileSync(file));
  assert.deepEqual(back.get('stats.running_mean')!.shape, [6]);
  assert.deepEqual(back.get('fc1.weight')!.shape, [5, 6]);
  const fresh = net();
  fresh.loadState(new Map([...back].map(([n, t]) => [n, t.data])));
  assert.deepEqual(fresh.state(), m.state());
});
