/**
 * `lth export`: a finished stage as ONNX run by onnxruntime-node (its logits are lth's, on
 * the test set), as a PyTorch state dict (unpickled by python3 with stand-ins for torch's
 * two rebuild functions, and by torch.load itself where PyTorch is installed), and as
 * safetensors; a small_dense stage exports with its own widths; conv nets, ResNets and VGGs
 * with batch norm (evaluation mode) export as ONNX too; mistakes are clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { exportStage } from '../src/export/index.js';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import { Rng } from '../src/core/rng.js';
import { getModel } from '../src/models/registry.js';
import type { Model } from '../src/nn/model.js';
import { Tensor, noGrad } from '../src/tensor/tensor.js';
import { FILES, stageDir } from '../src/store/layout.js';
import { loadSafetensors } from '../src/store/safetensors.js';
import { loadSplits } from '../src/training/run.js';
import { widthsForWeights } from '../src/models/resize.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-export-'));
const h = resolveLottery({ steps: '30it', evalEvery: 15, levels: 1, branches: ['small_dense'], root: tmp() });
const { runDir } = runLottery(h);
const test500 = (() => {
  const t = loadSplits(h.training).test;
  return { x: t.images.subarray(0, 500 * 784), labels: t.labels.subarray(0, 500) };
})();

/** lth's logits of the 500 test examples with a stage's final weights. */
function lthLogits(branch: string): Float32Array {
  const weights = loadSafetensors(path.join(stageDir(runDir, 0, 1, branch), FILES.final));
  const spec = getModel('lenet_300_100');
  const model = branch === 'small_dense' ? spec.withWidths!([weights.get('fc1.weight')!.shape[0], weights.get('fc2.weight')!.shape[0]]) : spec.build();
  model.loadState(new Map([...weights].map(([n, t]) => [n, t.data])));
  model.train(false);
  return noGrad(() => Float32Array.from(model.forward(new Tensor(Float32Array.from(test500.x), [500, 784])).data));
}

for (const branch of ['main', 'small_dense']) {
  test(`ONNX of the level-1 ${branch} stage: onnxruntime computes lth's logits`, async () => {
    const out = path.join(tmp(), `${branch}.onnx`);
    const r = exportStage(runDir, { level: 1, branch, format: 'onnx', out });
    assert.equal(r.stage, `replicate_0/level_1/${branch}`);
    const session = await ort.InferenceSession.create(out);
    assert.deepEqual([session.inputNames, session.outputNames], [['input'], ['logits']]);
    const { logits } = await session.run({ input: new ort.Tensor('float32', Float32Array.from(test500.x), [500, 784]) });
    assert.deepEqual(logits.dims, [500, 10]);
    const got = logits.data as Float32Array, want = lthLogits(branch);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst < 1e-4, `${branch}: largest logit difference ${worst}`);
    const argmax = (a: Float32Array, i: number) => a.subarray(i * 10, i * 10 + 10).reduce((b, v, j, s) => (v > s[b] ? j : b), 0);
    for (let i = 0; i < 500; i++) assert.equal(argmax(got, i), argmax(want, i), `${branch}: example ${i}'s prediction`);
  });
}

test('the small_dense stage is narrower than the ticket and exports with its own shapes', () => {
  const weights = loadSafetensors(path.join(stageDir(runDir, 0, 1, 'small_dense'), FILES.final));
  const ticket = loadSafetensors(path.join(stageDir(runDir, 0, 1, 'main'), FILES.mask));
  let kept = 0;
  for (const t of ticket.values()) kept += t.data.reduce((a, v) => a + v, 0);
  assert.deepEqual(weights.get('fc1.weight')!.shape, [widthsForWeights(getModel('lenet_300_100'), kept).widths[0], 784]);
});

test('a PyTorch state dict: names, shapes and values, read back through its pickle', () => {
  const out = path.join(tmp(), 'ticket.pt');
  exportStage(runDir, { level: 1, format: 'pt', out });
  const weights = loadSafetensors(path.join(stageDir(runDir, 0, 1, 'main'), FILES.final));
  const script = fileURLToPath(new URL('../../fixtures/read_torch_state.py', import.meta.url));
  // Debian's python3 first: where Debian's PyTorch is, when it is installed.
  const py = spawnSync(fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [script, out], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const read = JSON.parse(py.stdout) as Record<string, { shape: number[]; sum: number; zeros: number; torch: boolean }>;
  assert.deepEqual(Object.keys(read), [...weights.keys()]);
  for (const [n, t] of weights) {
    assert.deepEqual(read[n].shape, t.shape, n);
    assert.equal(read[n].zeros, t.data.filter((v) => v === 0).length, `${n}: the pruned weights are zero`);
    assert.ok(Math.abs(read[n].sum - t.data.reduce((a, v) => a + v, 0)) < 1e-3, `${n}: the values`);
  }
});

test('safetensors export, and the mistakes a user can make', () => {
  const out = path.join(tmp(), 'ticket.safetensors');
  exportStage(runDir, { level: 1, format: 'safetensors', weights: 'init', out });
  assert.deepEqual(loadSafetensors(out), loadSafetensors(path.join(stageDir(runDir, 0, 1, 'main'), FILES.init)));
  assert.throws(() => exportStage(runDir, { level: 1, format: 'safetensors', out }), /export: .*ticket.safetensors exists/);
  assert.throws(() => exportStage(runDir, { level: 2, format: 'onnx', out: path.join(tmp(), 'a.onnx') }), /--level must be an integer in \[0, 1\] for this run, got 2/);
  assert.throws(() => exportStage(runDir, { level: 1, branch: 'reinit', format: 'onnx', out: path.join(tmp(), 'a.onnx') }), /this run has no branch 'reinit' \(it has main, small_dense\)/);
  assert.throws(() => exportStage(tmp(), { level: 1, format: 'onnx', out: path.join(tmp(), 'a.onnx') }), /is not a lottery run directory/);
  assert.throws(() => exportStage(stageDir(runDir, 0, 1, 'main'), { level: 1, out: path.join(tmp(), 'a.onnx') }), { name: 'LthError', message: /level_1\/main is inside the lottery run .*: give the run directory itself/ });
  // The format from the file's extension, and an extension that names another format refused.
  const byName = path.join(tmp(), 'ticket.SafeTensors');
  exportStage(runDir, { level: 1, weights: 'init', out: byName });
  assert.deepEqual(loadSafetensors(byName), loadSafetensors(out));
  const pth = path.join(tmp(), 'ticket.pth');
  exportStage(runDir, { level: 1, out: pth });
  assert.equal(fs.readFileSync(pth).subarray(0, 2).toString('latin1'), 'PK', 'a .pth file is a PyTorch state dict (a zip archive)');
  assert.throws(() => exportStage(runDir, { level: 1, out: path.join(tmp(), 'ticket.bin') }), /export: give --format \(onnx, safetensors, pt\), or an --out ending in \.onnx, \.safetensors, \.pt, \.pth/);
  assert.throws(() => exportStage(runDir, { level: 1, format: 'onnx', out: path.join(tmp(), 'ticket.pt') }), /export: --out .*ticket\.pt ends in \.pt \(format pt\), but --format is onnx; give an --out ending in \.onnx, or another --format/);
  const bin = path.join(tmp(), 'ticket.bin');
  exportStage(runDir, { level: 1, format: 'safetensors', weights: 'init', out: bin });
  assert.deepEqual(loadSafetensors(bin), loadSafetensors(out), 'an extension that names no format takes --format');
});

test('ONNX of a sequence model is refused, naming the module and the formats that take any model', async () => {
  const { onnxModel } = await import('../src/export/onnx.js');
  const model = getModel('sensor_cnn').build();
  const weights = new Map(model.namedTensors().map(([n, t]) => [n, { shape: t.shape, data: t.data }]));
  assert.throws(() => onnxModel({ model: model.describe(), weights, sampleShape: [2, 16], classes: 2, metadata: {} }),
    /export: no ONNX form for module type 'conv1d' \(known: .*\); --format pt or safetensors exports any model/);
});

/**
 * Exports `model`'s tensors as ONNX, runs onnxruntime on the 4 images `x` and checks its
 * logits against lth's evaluation-mode forward pass, to 1e-4 of the largest logit.
 */
async function assertOnnxMatches(label: string, model: Model, x: Float32Array): Promise<void> {
  const { onnxModel } = await import('../src/export/onnx.js');
  const weights = new Map(model.namedTensors().map(([n, t]) => [n, { shape: t.shape, data: t.data }]));
  const file = path.join(tmp(), `${label}.onnx`);
  fs.writeFileSync(file, onnxModel({ model: model.describe(), weights, sampleShape: [3, 32, 32], classes: 10, metadata: {} }));
  const session = await ort.InferenceSession.create(file);
  const got = (await session.run({ input: new ort.Tensor('float32', x, [4, 3, 32, 32]) })).logits.data as Float32Array;
  model.train(false);
  const want = noGrad(() => Float32Array.from(model.forward(new Tensor(Float32Array.from(x), [4, 3, 32, 32])).data));
  let worst = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(worst <= 1e-4 * Math.max(1, scale), `${label}: largest logit difference ${worst} (logits up to ${scale})`);
}

/** Four standard-normal 3×32×32 images. */
function randomImages(): Float32Array {
  const rng = new Rng(6, 'x');
  return Float32Array.from({ length: 4 * 3 * 32 * 32 }, () => rng.normal());
}

test('ONNX of a conv net (Conv, ReLU, MaxPool, Flatten, Gemm; dropout left out): onnxruntime computes lth\'s logits', async () => {
  const model = getModel('conv2_dropout').build();
  model.initialize(new Rng(5, 'init'));
  await assertOnnxMatches('conv2_dropout', model, randomImages());
});

test('ONNX of cifar_resnet_20 and cifar_vgg_11 (Conv without bias, BatchNormalization on the running statistics, Add, GlobalAveragePool): onnxruntime computes lth\'s logits', async () => {
  for (const name of ['cifar_resnet_20', 'cifar_vgg_11']) {
    const model = getModel(name).build();
    model.initialize(new Rng(5, 'init'));
    const x = randomImages();
    // A pass in training mode moves the running statistics away from 0 and 1.
    noGrad(() => model.forward(new Tensor(Float32Array.from(x), [4, 3, 32, 32])));
    await assertOnnxMatches(name, model, x);
  }
});

test('a PyTorch state dict keeps a batch norm\'s num_batches_tracked as int64, as PyTorch does', async () => {
  const { torchStateDict } = await import('../src/export/torch-pt.js');
  const out = path.join(tmp(), 'bn.pt');
  fs.writeFileSync(out, torchStateDict(new Map([
    ['bn.weight', { shape: [3], data: Float32Array.from([1, 0.5, 0]) }],
    ['bn.num_batches_tracked', { shape: [], data: Float32Array.from([7]) }],
  ]), 'bn'));
  const script = fileURLToPath(new URL('../../fixtures/read_torch_state.py', import.meta.url));
  const py = spawnSync(fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [script, out], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const read = JSON.parse(py.stdout) as Record<string, { dtype: string; sum: number; shape: number[] }>;
  assert.deepEqual(read['bn.num_batches_tracked'], { ...read['bn.num_batches_tracked'], dtype: 'int64', sum: 7, shape: [] });
  assert.deepEqual([read['bn.weight'].dtype, read['bn.weight'].sum], ['float32', 1.5]);
});

test('--compact: a neuron_l1 ticket at its smaller widths, which the safetensors metadata names', () => {
  const { runDir: structured } = runLottery(resolveLottery({ strategy: 'neuron_l1', steps: '10it', evalEvery: 10, levels: 1, root: tmp() }));
  const out = path.join(tmp(), 'small.safetensors');
  const r = exportStage(structured, { level: 1, compact: true, out });
  assert.deepEqual(r.widths, [240, 80, 10], '20% of the hidden neurons removed, the output layer whole');
  const bytes = fs.readFileSync(out);
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8'));
  assert.equal(header.__metadata__.widths, '240,80,10');
  assert.deepEqual([header['fc1.weight'].shape, header['fc2.weight'].shape, header['fc3.weight'].shape], [[240, 784], [80, 240], [10, 80]]);
});
