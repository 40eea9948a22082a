/**
 * The dense-MLP kernels: the native ones against the reference composition (steps with
 * Adam and SGD, no update, evaluation) at 1, 2 and 3 threads, layers with and without
 * bias and ReLU; a finite-difference check of the gradient a step adds; errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import { loadNative, type NativeAddon } from './native.js';
import { referenceDenseMlp, type DenseMlpKernels, type DenseMlpLayer } from './dense-mlp.js';
import { referenceBackend } from './reference.js';
import type { UpdateRule } from './sparse-mlp.js';

const native = loadNative() as NativeAddon;

/**
 * A chain of `sizes` (inputs first), the given layers without a bias, ReLU on all but the
 * last; optimiser state for `rule`; with `density`, every weight masked at about that
 * density (its pruned entries zero).
 */
function chain(sizes: number[], seed: number, rule: UpdateRule['kind'] | null, noBias: number[] = [], density?: number): DenseMlpLayer[] {
  const rng = new Rng(seed, 'chain');
  return sizes.slice(1).map((out, i) => {
    const layer = plainLayer(rng, sizes[i], out, i < sizes.length - 2, rule, !noBias.includes(i));
    if (density === undefined) return layer;
    const mask = new Float32Array(layer.weight.length).map(() => (rng.uniform() < density ? 1 : 0));
    layer.weight.forEach((_, j) => { if (mask[j] === 0) layer.weight[j] = 0; });
    return { ...layer, mask };
  });
}

/** One unmasked layer of `chain`. */
function plainLayer(rng: Rng, inF: number, out: number, relu: boolean, rule: UpdateRule['kind'] | null, hasBias: boolean): DenseMlpLayer {
  const size = inF * out;
  const arrays = (k: number) => Array.from({ length: k }, (_, j) => new Float32Array(size).map(() => (j === 1 ? 0.01 * rng.uniform() : 0.01 * rng.normal())));
  const biasArrays = (k: number) => Array.from({ length: k }, () => new Float32Array(out));
  const k = rule === 'adam' ? 2 : rule === 'sgd' ? 1 : 0;
  return {
    inFeatures: inF, outFeatures: out, relu,
    weight: new Float32Array(size).map(() => rng.normal() / Math.sqrt(inF)),
    bias: hasBias ? new Float32Array(out).map(() => 0.1 * rng.normal()) : null,
    gweight: new Float32Array(size), gbias: hasBias ? new Float32Array(out) : null,
    state: k ? { weight: arrays(k), bias: biasArrays(k) } : undefined,
  };
}

function data(samples: number, features: number, classes: number, seed: number) {
  const rng = new Rng(seed, 'data');
  return {
    src: new Float32Array(samples * features).map(() => rng.normal()),
    labels: Int32Array.from({ length: samples }, () => rng.int(classes)),
    order: rng.permutation(samples),
  };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  let worst = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(worst <= tol * scale, `${what}: max diff ${worst} (scale ${scale})`);
}

const rules: Record<string, UpdateRule | null> = {
  adam: { kind: 'adam', lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3 },
  sgd: { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3 },
  none: null,
};

test('native dense-MLP steps and evaluation match the reference composition, at 1, 2 and 3 threads', () => {
  const threads = native.getThreads();
  try {
    for (const [name, rule] of Object.entries(rules)) {
      for (const [sizes, noBias, density] of [[[29, 40, 17, 6], []], [[50, 13, 7], [0]], [[9, 64, 33, 21, 4], [1, 3]], [[29, 40, 17, 6], [], 0.5]] as Array<[number[], number[], number?]>) {
        const d = data(70, sizes[0], sizes[sizes.length - 1], sizes.length);
        const run = (k: DenseMlpKernels) => {
          const layers = chain(sizes, 1, rule?.kind ?? null, noBias, density);
          const losses = new Float64Array(4);
          assert.equal(k.step(k.prepare(layers), d.src, d.labels, d.order, 3, 11, rule, losses), 4);
          return { losses, layers, ev: k.evaluate(k.prepare(layers), d.src, d.labels, 16) };
        };
        const want = run(referenceDenseMlp);
        for (const t of [1, 2, 3]) {
          native.setThreads(t);
          const got = run(native.denseMlp), what = `${name} ${sizes.join('-')}${density === undefined ? '' : ` masked`}, ${t} threads`;
          assertClose(got.losses, want.losses, 1e-5, `${what}: losses`);
          got.layers.forEach((l, i) => {
            const w = want.layers[i];
            for (const [key, a, b] of [['weight', l.weight, w.weight], ['gweight', l.gweight, w.gweight], ['bias', l.bias, w.bias], ['gbias', l.gbias, w.gbias]] as const) {
              if (a && b && b.some((v) => v !== 0)) assertClose(a, b, 1e-4, `${what}: layer ${i} ${key}`);
            }
            l.state?.weight.forEach((s, j) => assertClose(s, w.state!.weight[j], 1e-4, `${what}: layer ${i} state ${j}`));
            if (l.mask && rule) {
              const kept = (a: Float32Array) => a.every((v, j) => l.mask![j] !== 0 || v === 0);
              assert.ok(kept(l.weight) && l.state!.weight.every(kept), `${what}: layer ${i}'s pruned weights and their state stay zero`);
            }
          });
          assert.equal(got.ev.correct, want.ev.correct, `${what}: correct`);
          assertClose([got.ev.loss], [want.ev.loss], 1e-5, `${what}: evaluation loss`);
        }
      }
    }
  } finally {
    native.setThreads(threads);
  }
});

test('the gradient a dense-MLP step adds is the finite-difference gradient of the mean loss (reference and native)', () => {
  const sizes = [5, 7, 6, 3];
  const d = data(8, 5, 3, 9);
  const order = Int32Array.from({ length: 8 }, (_, i) => i);
  for (const k of [referenceDenseMlp, native.denseMlp]) {
    const layers = chain(sizes, 4, null);
    k.step(k.prepare(layers), d.src, d.labels, order, 0, 8, null, new Float64Array(1));
    // The mean loss over the 8 samples, in double through the reference backend's kernels.
    const loss = () => referenceDenseMlp.evaluate(referenceDenseMlp.prepare(layers), d.src, d.labels, 8).loss / 8;
    const h = 1e-2;
    for (const [i, which, j] of [[0, 'weight', 3], [0, 'weight', 30], [1, 'weight', 17], [2, 'weight', 5], [0, 'bias', 2], [2, 'bias', 1]] as const) {
      const p = layers[i][which]!, g = (which === 'weight' ? layers[i].gweight : layers[i].gbias)![j];
      const v = p[j];
      p[j] = v + h;
      const up = loss();
      p[j] = v - h;
      const down = loss();
      p[j] = v;
      const fd = (up - down) / (2 * h);
      assert.ok(Math.abs(fd - g) <= 2e-3 + 2e-2 * Math.abs(fd), `layer ${i} ${which}[${j}]: finite difference ${fd}, step ${g}`);
    }
  }
});

test('native dense-MLP kernels: errors', () => {
  const k = native.denseMlp;
  assert.throws(() => k.prepare(chain([4, 3], 0, null)), /denseMlpPrepare: expected at least two layers/);
  const bad = chain([4, 3, 2], 0, null);
  assert.throws(() => k.prepare([bad[0], { ...bad[1], inFeatures: 4, weight: new Float32Array(8), gweight: new Float32Array(8) }]), /layer 1 takes 4 inputs but layer 0 gives 3/);
  assert.throws(() => k.prepare([{ ...bad[0], gweight: bad[0].weight }, bad[1]]), /must not share memory/);
  assert.throws(() => k.prepare([{ ...bad[0], weight: new Float32Array(11) }, bad[1]]), /layer 0 weight has 11 elements, needs in\*out = 12/);
  assert.throws(() => k.prepare([bad[0], { ...bad[1], mask: new Float32Array(5) }]), /layer 1 mask has 5 elements, needs in\*out = 6/);
  const c = k.prepare(bad);
  const d = data(10, 4, 2, 0);
  assert.throws(() => k.step(c, d.src, d.labels, d.order, 0, 2, rules.adam, new Float64Array(1)), /layer 0: w0 must be a Float32Array for the update/);
  assert.throws(() => k.step(c, d.src, d.labels, d.order, 0, 2, null, new Float64Array(0)), /losses must hold at least one step/);
  assert.throws(() => k.step(c, d.src, d.labels, d.order, 0, 4, null, new Float64Array(3)), /indices has 10 elements, needs from\+n\*steps = 12/);
  const labels = Int32Array.from(d.labels);
  labels[d.order[1]] = 2;
  assert.throws(() => k.step(c, d.src, labels, d.order, 0, 2, null, new Float64Array(1)), /srcLabels\[\d+\] = 2 is outside \[0, 2\)/);
  assert.throws(() => k.evaluate(c, d.src.subarray(1), d.labels, 4), /not a whole number of samples of 4/);
  assert.throws(() => referenceDenseMlp.step(referenceDenseMlp.prepare(bad), d.src, labels, d.order, 0, 2, null, new Float64Array(1)), /srcLabels\[\d+\] = 2 is outside \[0, 2\)/);
  assert.throws(() => k.step(referenceDenseMlp.prepare(bad), d.src, d.labels, d.order, 0, 2, null, new Float64Array(1)), /not prepared by the native backend/);
});

test('the reference dense-MLP kernels run on the reference backend', () => {
  // Their results are the oracle's: a step is the reference backend's kernels composed.
  const layers = chain([6, 4, 3], 2, null);
  const d = data(5, 6, 3, 1);
  const x = new Float32Array(6), h = new Float32Array(4), y = new Float32Array(3);
  referenceBackend.gatherRows(d.src, 6, d.order, 0, 1, x);
  referenceBackend.matmul(x, layers[0].weight, h, 1, 6, 4, false, true, false);
  referenceBackend.biasAct(h, layers[0].bias!, h, 1, 4, true);
  referenceBackend.matmul(h, layers[1].weight, y, 1, 4, 3, false, true, false);
  referenceBackend.biasAct(y, layers[1].bias!, y, 1, 3, false);
  const want = Math.fround(referenceBackend.softmaxXent(y, d.labels.subarray(d.order[0], d.order[0] + 1), 1, 3, null, 0));
  const losses = new Float64Array(1);
  referenceDenseMlp.step(referenceDenseMlp.prepare(layers), d.src, d.labels, d.order, 0, 1, null, losses);
  assert.equal(losses[0], want);
});
