/**
 * Golden tests against PyTorch for the sequence models, from the fixture written by
 * fixtures/gen_seq_models_golden.py (see its docstring; PyTorch is not needed here):
 * sensor_cnn as the registry builds it, and text_cnn and text_transformer at small widths
 * (built from the same layers in the same order as the registry's, which is checked too).
 * Each: logits, mean cross-entropy and the gradient of every parameter, err = ‖lth -
 * torch‖₂ / ‖torch‖₂ ≤ 1e-5 per tensor. Weights and inputs come from the shared
 * integer-hash formula (nn/testing.ts). Runs on getBackend(); when that is the native
 * addon, a child process repeats the file on the reference backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../backend/index.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { ModuleDesc } from '../nn/module.js';
import { Conv1d, Embedding, LayerNorm, MaxOverTime, MeanOverTime, PositionEmbedding, SwapAxes, TransformerBlock } from '../nn/seq-layers.js';
import { formulaIds, formulaTensor, normErr, rerunOnReference } from '../nn/testing.js';
import { loadSafetensors } from '../store/safetensors.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { getModel } from './registry.js';

const TOL = 1e-5;
const FIXTURE = fileURLToPath(new URL('../../../fixtures/seq_models_golden.safetensors', import.meta.url));
const META = fileURLToPath(new URL('../../../fixtures/seq_models_golden.json', import.meta.url));

interface TensorSpec { name: string; shape: number[]; k: number; std: number; offset: number }
interface Case {
  input: { kind: 'ids' | 'values'; shape: number[]; k: number };
  labels: { k: number; classes: number };
  tensors: TensorSpec[];
  loss: number;
}
const meta = JSON.parse(fs.readFileSync(META, 'utf8')) as { vocabulary: number; cases: Record<string, Case> };
const fixture = loadSafetensors(FIXTURE);
const backend = getBackend().name;
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A model's layers without their sizes: names, types, activations, and whether a Conv1d pads to keep the length. */
function layout(d: ModuleDesc): unknown {
  const { type, activation, layers, kernel, padding } = d as ModuleDesc & { activation?: string; layers?: Array<[string, ModuleDesc]>; kernel?: number; padding?: number };
  return {
    type, activation, same: kernel === undefined ? undefined : 2 * padding! + 1 === kernel,
    layers: layers?.map(([n, m]) => [n, layout(m)]),
  };
}

function golden(t: { diagnostic(s: string): void }, name: string, model: Model): void {
  const c = meta.cases[name];
  model.loadState(new Map(c.tensors.map((d) => [d.name, formulaTensor(d.k, size(d.shape), d.std, d.offset)])));
  const n = c.input.shape[0];
  const x = c.input.kind === 'ids'
    ? new Tensor(Float32Array.from(formulaIds(c.input.k, size(c.input.shape), meta.vocabulary)), c.input.shape)
    : new Tensor(formulaTensor(c.input.k, size(c.input.shape), 1), c.input.shape);
  const logits = model.forward(x);
  const loss = softmaxCrossEntropy(logits, formulaIds(c.labels.k, n, c.labels.classes));
  const errs: string[] = [];
  const report = (what: string, e: number) => {
    t.diagnostic(`${what}: rel err ${e.toExponential(2)}`);
    if (!(e <= TOL)) errs.push(`${what}: rel err ${e.toExponential(3)} > ${TOL}`);
  };
  report(`${name}/logits`, normErr(logits.data, fixture.get(`${name}/logits`)!.data));
  report(`${name}/loss`, Math.abs(loss.data[0] - c.loss) / c.loss);
  loss.backward();
  const params = model.namedParameters();
  assert.deepEqual(params.map(([p]) => p).sort(), c.tensors.map((d) => d.name).sort(), `${name}: the parameters are PyTorch's`);
  for (const [p, tensor] of params) {
    const want = fixture.get(`${name}/grad.${p}`)!;
    assert.deepEqual(tensor.shape, want.shape, `${name}/grad.${p} shape`);
    report(`${name}/grad.${p}`, normErr(tensor.grad!, want.data));
  }
  assert.deepEqual(errs, []);
}

test(`sensor_cnn golden (${backend}): the registry's model, logits, loss and every gradient match PyTorch`, (t) => {
  golden(t, 'sensor_cnn', getModel('sensor_cnn').build());
});

test(`text_cnn golden (${backend}): its layers at small widths match PyTorch`, (t) => {
  const v = meta.vocabulary;
  const model = new Model('text_cnn', [
    ['embed', new Embedding(v, 8)], ['swap', new SwapAxes()], ['conv', new Conv1d(8, 6, 5, 'same', 'relu')], ['pool', new MaxOverTime()], ['fc', new Linear(6, 2, 'none')],
  ]);
  assert.deepEqual(layout(model.describe()), layout(getModel('text_cnn').build().describe()), 'the registry\'s text_cnn has these layers');
  golden(t, 'text_cnn', model);
});

test(`text_transformer golden (${backend}): its layers at small widths match PyTorch`, (t) => {
  const v = meta.vocabulary;
  const model = new Model('text_transformer', [
    ['embed', new Embedding(v, 8)], ['pos', new PositionEmbedding(6, 8)], ['block1', new TransformerBlock(8, 2, 32)], ['block2', new TransformerBlock(8, 2, 32)],
    ['norm', new LayerNorm(8)], ['pool', new MeanOverTime()], ['fc', new Linear(8, 2, 'none')],
  ]);
  assert.deepEqual(layout(model.describe()), layout(getModel('text_transformer').build().describe()), 'the registry\'s text_transformer has these layers');
  golden(t, 'text_transformer', model);
});

test('sequence-model golden: the reference backend matches PyTorch too', (t) => {
  rerunOnReference(t, import.meta.url, { timeoutMs: 120_000 });
});
