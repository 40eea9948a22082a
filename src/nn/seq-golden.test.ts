/**
 * Golden tests against PyTorch for the sequence layers, from the fixture written by
 * fixtures/gen_seq_golden.py (see its docstring; PyTorch is not needed here): a 2-layer
 * LSTM character model (nn.Embedding, nn.LSTM, a per-position nn.Linear, mean
 * cross-entropy over positions) — logits, loss and every gradient — and a pre-LN
 * Transformer block (nn.TransformerEncoderLayer(norm_first=True) with a causal mask) —
 * output, loss and the gradients of every parameter and of the input. Weights and inputs
 * come from the shared integer-hash formula (nn/testing.ts). err = ‖lth - torch‖₂ /
 * ‖torch‖₂ ≤ 1e-5 per tensor. Runs on getBackend(); when that is the native addon, a child
 * process repeats the file on the reference backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../backend/index.js';
import { loadSafetensors } from '../store/safetensors.js';
import { softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Model } from './model.js';
import type { Module } from './module.js';
import { Embedding, FlattenTime, LSTM, TransformerBlock } from './seq-layers.js';
import { formulaIds, formulaTensor, normErr, rerunOnReference } from './testing.js';

const TOL = 1e-5;
const FIXTURE = fileURLToPath(new URL('../../../fixtures/seq_golden.safetensors', import.meta.url));
const META = fileURLToPath(new URL('../../../fixtures/seq_golden.json', import.meta.url));

interface TensorSpec { name: string; shape: number[]; k: number; std: number; offset: number }
interface Meta {
  lstm: { vocabulary: number; embedding: number; hidden: number; layers: number; batch: number; steps: number; tensors: TensorSpec[]; ids: Array<{ name: string; shape: number[]; k: number }>; loss: number };
  block: { dim: number; heads: number; ff: number; batch: number; steps: number; tensors: TensorSpec[]; inputs: TensorSpec[]; loss: number };
}

const meta = JSON.parse(fs.readFileSync(META, 'utf8')) as Meta;
const fixture = loadSafetensors(FIXTURE);
const backend = getBackend().name;
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const values = (specs: TensorSpec[]) => new Map(specs.map((d) => [d.name, formulaTensor(d.k, size(d.shape), d.std, d.offset)]));

/** Compares every parameter gradient of `m` with the fixture's `<prefix>/grad.<name>`. */
function compareGrads(m: Module, prefix: string, report: (what: string, e: number) => void): void {
  for (const [name, p] of m.namedParameters()) {
    const want = fixture.get(`${prefix}/grad.${name}`);
    assert.ok(want && p.grad, `${prefix}: gradient of ${name}`);
    assert.deepEqual(p.shape, want.shape, `${prefix}/grad.${name} shape`);
    report(`${prefix}/grad.${name}`, normErr(p.grad, want.data));
  }
}

function reporter(t: { diagnostic(s: string): void }): { report: (what: string, e: number) => void; errs: string[] } {
  const errs: string[] = [];
  return {
    errs,
    report: (what, e) => {
      t.diagnostic(`${what}: rel err ${e.toExponential(2)}`);
      if (!(e <= TOL)) errs.push(`${what}: rel err ${e.toExponential(3)} > ${TOL}`);
    },
  };
}

test(`LSTM language model golden (${backend}): logits, loss per position and every gradient match PyTorch`, (t) => {
  const L = meta.lstm;
  const model = new Model('golden_lstm', [['embed', new Embedding(L.vocabulary, L.embedding)], ['lstm', new LSTM(L.embedding, L.hidden, L.layers)],
    ['flat', new FlattenTime()], ['head', new Linear(L.hidden, L.vocabulary, 'none')]]);
  model.loadState(values(L.tensors));
  const [input, targets] = L.ids;
  const ids = new Tensor(Float32Array.from(formulaIds(input.k, size(input.shape), L.vocabulary)), input.shape);
  const logits = model.forward(ids);
  const loss = softmaxCrossEntropy(logits, formulaIds(targets.k, size(targets.shape), L.vocabulary));
  const { report, errs } = reporter(t);
  report('lstm/logits', normErr(logits.data, fixture.get('lstm/logits')!.data));
  report('lstm/loss', Math.abs(loss.data[0] - L.loss) / L.loss);
  loss.backward();
  compareGrads(model, 'lstm', report);
  assert.deepEqual(errs, []);
});

test(`Transformer block golden (${backend}): output, loss and the gradients of every parameter and the input match PyTorch`, (t) => {
  const B = meta.block;
  const block = new TransformerBlock(B.dim, B.heads, B.ff);
  block.loadState(values(B.tensors));
  const inputs = values(B.inputs);
  const x = new Tensor(inputs.get('x')!, [B.batch, B.steps, B.dim], true);
  const r = inputs.get('r')!;
  const y = block.forward(x);
  let s = 0;
  for (let i = 0; i < y.size; i++) s += y.data[i] * r[i];
  const loss = new Tensor(Float32Array.of(s), []);
  loss.requiresGrad = true;
  loss.parents = [y];
  loss.backwardFn = () => {
    const g = y.ensureGrad();
    for (let i = 0; i < y.size; i++) g[i] += r[i];
  };
  const { report, errs } = reporter(t);
  report('block/y', normErr(y.data, fixture.get('block/y')!.data));
  report('block/loss', Math.abs(s - B.loss) / Math.abs(B.loss));
  loss.backward();
  report('block/grad.x', normErr(x.grad!, fixture.get('block/grad.x')!.data));
  compareGrads(block, 'block', report);
  assert.deepEqual(errs, []);
});

test('sequence golden: the reference backend matches PyTorch too', (t) => {
  rerunOnReference(t, import.meta.url, { timeoutMs: 120_000 });
});
