/**
 * The native batch-norm, residual-addition and average-pooling kernels against the
 * reference backend: edge sizes (one value per channel, one-pixel planes, no channels),
 * NaN propagation, in-place calls, the fused residual, accumulation and null outputs, training and
 * evaluation gradients with and without the fused ReLU, argument validation, bitwise
 * independence of the thread count, and bitwise the same results on every SIMD path (the
 * batch-norm and average-pooling loops have an AVX2 copy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, type NativeAddon } from './index.js';
import { prng, randomArray } from './testing.js';

const loaded = loadNative();
const native: NativeAddon | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

/** [n, channels, size] */
const SHAPES: Array<[number, number, number]> = [[1, 1, 2], [2, 1, 1], [3, 5, 7], [4, 16, 64], [2, 3, 1], [5, 2, 1023], [1, 7, 33], [2, 0, 4]];

/** max |a - b| / (1 + |b|), NaN where exactly one is NaN. */
function worstErr(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let e = 0;
  for (let i = 0; i < b.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) {
      if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) return NaN;
      continue;
    }
    e = Math.max(e, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  }
  return e;
}

const close = (a: Float32Array, b: Float32Array, what: string, tol = 2e-6) => {
  const e = worstErr(a, b);
  assert.ok(e <= tol, `${what}: error ${e}`);
};

test('channelMoments matches the reference (mean, biased variance, a constant channel, NaN)', { skip }, () => {
  const rnd = prng(1);
  for (const [n, c, size] of SHAPES) {
    if (n * size === 0) continue;
    // An offset of 3 makes Σx² - (Σx)² cancel: the two-pass form must not.
    const x = randomArray(n * c * size, rnd, 2, 4);
    const m1 = new Float32Array(c), v1 = new Float32Array(c), m2 = new Float32Array(c), v2 = new Float32Array(c);
    ref.channelMoments(x, m1, v1, n, c, size);
    native!.channelMoments(x, m2, v2, n, c, size);
    close(m2, m1, `mean ${n}x${c}x${size}`);
    close(v2, v1, `variance ${n}x${c}x${size}`, 1e-5);
  }
  const constant = new Float32Array(2 * 2 * 3).fill(0.1), m = new Float32Array(2), v = new Float32Array(2).fill(7);
  native!.channelMoments(constant, m, v, 2, 2, 3);
  assert.ok(Math.abs(m[0] - 0.1) < 1e-7 && Math.abs(v[0]) < 1e-12, `constant channel: mean ${m[0]}, variance ${v[0]}`);
  const x = randomArray(2 * 3 * 4, rnd);
  x[5] = NaN; // channel 1 of sample 0
  const mm = new Float32Array(3), vv = new Float32Array(3);
  native!.channelMoments(x, mm, vv, 2, 3, 4);
  assert.ok(Number.isNaN(mm[1]) && Number.isNaN(vv[1]) && !Number.isNaN(mm[0]) && !Number.isNaN(vv[2]));
});

test('channelMoments keeps its precision far from zero (mean 100, std 0.01; image means drifting; an outlier first), on every SIMD path and thread count', { skip }, () => {
  const rnd = prng(12);
  const gauss = () => { let s = 0; for (let k = 0; k < 12; k++) s += rnd(); return s - 6; };
  const before = { simd: native!.simdPath(), threads: native!.getThreads() };
  try {
    for (const [n, c, size] of [[64, 3, 1024], [5, 2, 1023], [16, 4, 33], [3, 3, 7]] as Array<[number, number, number]>) {
      for (const [what, value] of [['mean 100, std 0.01', () => 100 + 0.01 * gauss()], ['image means 100 + i/100, std 0.01', (i: number) => 100 + i / 100 + 0.01 * gauss()],
        ['image means 1000·i, std 1', (i: number) => 1000 * i + gauss()],
        // Far from the plane's first value, where the sweep starts its first image.
        ['std 1, each plane of the first image led by 1000', (i: number, k: number) => (i === 0 && k === 0 ? 1000 : gauss())],
      ] as Array<[string, (i: number, k: number) => number]>) {
        const x = new Float32Array(n * c * size);
        for (let i = 0; i < n; i++) for (let j = 0; j < c * size; j++) x[i * c * size + j] = value(i, j % size);
        const runs = (['avx512', 'avx2', 'scalar'] as const).flatMap((path) => [1, 2, 3].map((threads) => {
          native!.setSimd(path);
          native!.setThreads(threads);
          const m = new Float32Array(2 * c);
          native!.channelMoments(x, m.subarray(0, c), m.subarray(c), n, c, size);
          return m;
        }));
        for (const r of runs.slice(1)) assert.deepEqual(Buffer.from(r.buffer), Buffer.from(runs[0].buffer), `${what} ${[n, c, size]}: SIMD paths or thread counts differ`);
        for (let k = 0; k < c; k++) {
          // The exact moments of the float data, in double.
          let s = 0, ss = 0;
          for (let i = 0; i < n; i++) for (let j = 0, o = (i * c + k) * size; j < size; j++) s += x[o + j];
          const mu = s / (n * size);
          for (let i = 0; i < n; i++) for (let j = 0, o = (i * c + k) * size; j < size; j++) ss += (x[o + j] - mu) ** 2;
          const variance = ss / (n * size), std = Math.sqrt(variance), m = runs[0][k], v = runs[0][c + k];
          // The float mean within half an ulp of the exact one (plus a hair of the std); the variance to float precision.
          const halfUlp = Math.abs(Math.fround(m + Math.abs(m) * 2 ** -23) - m) / 2;
          assert.ok(Math.abs(m - mu) <= halfUlp + 1e-5 * std, `${what} ${[n, c, size]} channel ${k}: mean ${m}, exactly ${mu}`);
          assert.ok(Math.abs(v - variance) <= 1e-6 * variance, `${what} ${[n, c, size]} channel ${k}: variance ${v}, exactly ${variance}`);
        }
      }
    }
  } finally {
    native!.setSimd(before.simd);
    native!.setThreads(before.threads);
  }
});

test('channelAffineAct matches the reference (ReLU, residual, NaN kept, in place)', { skip }, () => {
  const rnd = prng(2);
  for (const [n, c, size] of SHAPES) {
    const x = randomArray(n * c * size, rnd), res = randomArray(n * c * size, rnd);
    if (x.length > 3) x[3] = NaN;
    if (res.length > 5) res[5] = NaN;
    const scale = randomArray(c, rnd), shift = randomArray(c, rnd, -0.5, 0.5);
    for (const relu of [false, true]) {
      const o1 = new Float32Array(x.length), o2 = o1.slice();
      ref.channelAffineAct(x, scale, shift, null, o1, n, c, size, relu);
      native!.channelAffineAct(x, scale, shift, null, o2, n, c, size, relu);
      close(o2, o1, `${n}x${c}x${size} relu=${relu}`, 1e-7);
      const inPlace = x.slice();
      native!.channelAffineAct(inPlace, scale, shift, null, inPlace, n, c, size, relu);
      assert.deepEqual(inPlace, o2, 'in place');
      // With a residual: exactly the affine pass, then addAct (the same two roundings).
      const r1 = new Float32Array(x.length), r2 = r1.slice(), apart = r1.slice();
      ref.channelAffineAct(x, scale, shift, res, r1, n, c, size, relu);
      native!.channelAffineAct(x, scale, shift, res, r2, n, c, size, relu);
      assert.deepEqual(r2, r1, `${n}x${c}x${size} relu=${relu} residual`);
      native!.channelAffineAct(x, scale, shift, null, apart, n, c, size, false);
      native!.addAct(apart, res, apart, apart.length, relu);
      assert.deepEqual(r2, apart, `${n}x${c}x${size} relu=${relu}: residual fused as affine + addAct`);
      const onResidual = res.slice();
      native!.channelAffineAct(x, scale, shift, onResidual, onResidual, n, c, size, relu);
      assert.deepEqual(onResidual, r1, 'in place on the residual');
    }
  }
});

test('batchNormBackward matches the reference (training/evaluation, ReLU, residual, accumulation or overwriting, null outputs)', { skip }, () => {
  const rnd = prng(3);
  for (const [n, c, size] of SHAPES) {
    if (n * size === 0) continue;
    const total = n * c * size;
    const x = randomArray(total, rnd), gy = randomArray(total, rnd), y = randomArray(total, rnd);
    const mean = new Float32Array(c), variance = new Float32Array(c);
    ref.channelMoments(x, mean, variance, n, c, size);
    const invstd = variance.map((v) => 1 / Math.sqrt(v + 1e-5)), weight = randomArray(c, rnd, 0.5, 1.5);
    for (const training of [true, false]) {
      for (const relu of [false, true]) {
        for (const residual of [false, true]) {
          for (const acc of [true, false]) {
            // Overwritten outputs start as NaN in the native run: their old contents must never be read.
            const start = (garbage: boolean) => ({
              gx: garbage ? new Float32Array(total).fill(NaN) : randomArray(total, prng(9)), gw: randomArray(c, prng(10)),
              gb: randomArray(c, prng(11)), gr: residual ? (garbage ? new Float32Array(total).fill(NaN) : randomArray(total, prng(12))) : null,
            });
            const r = start(false), m = start(!acc);
            const args = [n, c, size, training, relu, acc, acc] as const;
            ref.batchNormBackward(x, relu ? y : null, gy, mean, invstd, weight, r.gx, r.gw, r.gb, r.gr, ...args, null);
            native!.batchNormBackward(x, relu ? y : null, gy, mean, invstd, weight, m.gx, m.gw, m.gb, m.gr, ...args, null);
            const what = `${n}x${c}x${size} training=${training} relu=${relu} residual=${residual} accumulate=${acc}`;
            // The input gradient in training mode subtracts two means: hold it to the gradient's scale.
            close(m.gx, r.gx, `${what} gradIn`, 1e-5 * Math.sqrt(size));
            close(m.gw, r.gw, `${what} gradWeight`, 1e-5 * Math.sqrt(n * size));
            close(m.gb, r.gb, `${what} gradBias`, 1e-5 * Math.sqrt(n * size));
            if (residual) assert.deepEqual(m.gr, r.gr, `${what} gradResidual`);
            const only = randomArray(c, prng(10));
            native!.batchNormBackward(x, relu ? y : null, gy, mean, invstd, weight, null, only, null, null, ...args, null);
            assert.deepEqual(only, m.gw, `${what}: gradWeight alone`);
            if (!residual) continue;
            const grOnly = acc ? randomArray(total, prng(12)) : new Float32Array(total).fill(NaN);
            native!.batchNormBackward(x, relu ? y : null, gy, mean, invstd, weight, null, null, null, grOnly, ...args, null);
            assert.deepEqual(grOnly, m.gr, `${what}: gradResidual alone`);
          }
        }
      }
    }
  }
});

test('batchNormBackward with the ReLU mask from x and shift: the gradients with y, bit for bit, natively and in the reference', { skip }, () => {
  const rnd = prng(8);
  for (const [n, c, size] of [[3, 5, 7], [4, 16, 64], [2, 3, 1], [5, 2, 1023]] as Array<[number, number, number]>) {
    const total = n * c * size;
    const x = randomArray(total, rnd), gy = randomArray(total, rnd);
    x[5] = NaN;
    const mean = new Float32Array(c), variance = new Float32Array(c);
    ref.channelMoments(x.map((v) => (Number.isNaN(v) ? 0 : v)), mean, variance, n, c, size);
    const invstd = variance.map((v) => 1 / Math.sqrt(v + 1e-5)), weight = randomArray(c, rnd, -1.5, 1.5), bias = randomArray(c, rnd);
    // The forward pass's affine map, as batchNorm2d computes it; some values land exactly on 0.
    const scale = weight.map((w, j) => w * invstd[j]), shift = bias.map((b, j) => b - mean[j] * scale[j]);
    x[1] = -shift[0] / scale[0];
    for (const be of [ref, native!]) {
      const y = new Float32Array(total);
      be.channelAffineAct(x, scale, shift, null, y, n, c, size, true);
      for (const training of [true, false]) {
        const run = (withY: boolean) => {
          const o = new Float32Array(total + 2 * c).fill(NaN);
          o.fill(0.25, total);
          be.batchNormBackward(x, withY ? y : null, gy, mean, invstd, weight, o.subarray(0, total), o.subarray(total, total + c), o.subarray(total + c),
            null, n, c, size, training, true, false, false, withY ? null : shift);
          return Buffer.from(o.buffer);
        };
        assert.deepEqual(run(false), run(true), `${be.name} ${[n, c, size]} training=${training}`);
      }
    }
  }
});

test('addAct and addActBackward match the reference exactly (ReLU, NaN, in place, null gradients, added or overwritten, one array for both)', { skip }, () => {
  const rnd = prng(4);
  for (const n of [0, 1, 7, 100_003]) {
    const a = randomArray(n, rnd), b = randomArray(n, rnd);
    if (n > 2) a[2] = NaN;
    for (const relu of [false, true]) {
      const o1 = new Float32Array(n), o2 = o1.slice();
      ref.addAct(a, b, o1, n, relu);
      native!.addAct(a, b, o2, n, relu);
      assert.deepEqual(o2, o1, `addAct n=${n} relu=${relu}`);
      const inPlace = a.slice();
      native!.addAct(inPlace, b, inPlace, n, relu);
      assert.deepEqual(inPlace, o1, 'addAct in place');
      const gy = randomArray(n, rnd);
      const ga1 = randomArray(n, prng(5)), gb1 = randomArray(n, prng(6)), ga2 = ga1.slice(), gb2 = gb1.slice();
      ref.addActBackward(gy, relu ? o1 : null, ga1, gb1, n, relu, true, true);
      native!.addActBackward(gy, relu ? o1 : null, ga2, gb2, n, relu, true, true);
      assert.deepEqual(ga2, ga1, `addActBackward gradA n=${n} relu=${relu}`);
      assert.deepEqual(gb2, gb1, `addActBackward gradB n=${n} relu=${relu}`);
      const gOnly = randomArray(n, prng(6));
      native!.addActBackward(gy, relu ? o1 : null, null, gOnly, n, relu, false, true);
      assert.deepEqual(gOnly, gb1, 'addActBackward with gradA null');
      // Overwritten: the old contents (NaN here) never read; the masked gradient itself.
      const masked = gy.map((g, i) => (relu && !(o1[i] > 0) ? 0 : g));
      const ow1 = new Float32Array(n).fill(NaN), ow2 = new Float32Array(n).fill(NaN), owRef = new Float32Array(n).fill(NaN);
      native!.addActBackward(gy, relu ? o1 : null, ow1, ow2, n, relu, false, false);
      ref.addActBackward(gy, relu ? o1 : null, owRef, null, n, relu, false, false);
      assert.deepEqual(ow1, masked, `addActBackward overwriting gradA n=${n} relu=${relu}`);
      assert.deepEqual(ow2, masked, `addActBackward overwriting gradB n=${n} relu=${relu}`);
      assert.deepEqual(owRef, masked, `reference addActBackward overwriting n=${n} relu=${relu}`);
      // a + a: one array for both gradients, the first overwritten and the second added.
      const both = new Float32Array(n).fill(NaN);
      native!.addActBackward(gy, relu ? o1 : null, both, both, n, relu, false, true);
      assert.deepEqual(both, masked.map((g) => Math.fround(g + g)), `addActBackward into one array n=${n} relu=${relu}`);
    }
  }
});

test('meanPlanes and meanPlanesBackward match the reference (accumulating)', { skip }, () => {
  const rnd = prng(5);
  for (const [planes, size] of [[1, 1], [3, 64], [256, 64], [7, 1023], [0, 5]]) {
    const x = randomArray(planes * size, rnd);
    const o1 = new Float32Array(planes), o2 = o1.slice();
    ref.meanPlanes(x, o1, planes, size);
    native!.meanPlanes(x, o2, planes, size);
    close(o2, o1, `meanPlanes ${planes}x${size}`);
    const gy = randomArray(planes, rnd), g1 = randomArray(planes * size, prng(7)), g2 = g1.slice();
    ref.meanPlanesBackward(gy, g1, planes, size);
    native!.meanPlanesBackward(gy, g2, planes, size);
    close(g2, g1, `meanPlanesBackward ${planes}x${size}`, 1e-7);
  }
});

test('the norm kernels validate their arguments with clear errors', { skip }, () => {
  const N = native!;
  const f = (n: number) => new Float32Array(n);
  const err = (type: typeof TypeError, re: RegExp) => (e: unknown) => e instanceof type && re.test((e as Error).message);
  assert.throws(() => N.channelMoments(f(11), f(3), f(3), 2, 3, 2), err(RangeError, /^channelMoments: x has 11 elements, needs n\*channels\*size = 12$/));
  assert.throws(() => N.channelMoments(f(0), f(3), f(3), 0, 3, 2), err(RangeError, /^channelMoments: n\*size must be at least 1, got 0$/));
  assert.throws(() => N.channelAffineAct(f(12), f(2), f(3), null, f(12), 2, 3, 2, false), err(RangeError, /^channelAffineAct: scale has 2 elements, needs channels = 3$/));
  assert.throws(() => N.channelAffineAct(f(12), f(3), f(3), f(10), f(12), 2, 3, 2, false),
    err(RangeError, /^channelAffineAct: residual has 10 elements, needs n\*channels\*size = 12$/));
  assert.throws(() => N.batchNormBackward(f(12), null, f(12), f(3), f(3), f(3), f(12), null, null, null, 2, 3, 2, true, true, true, true, null),
    err(TypeError, /^batchNormBackward: y or shift must be a Float32Array with relu, got null$/));
  assert.throws(() => N.batchNormBackward(f(12), null, f(12), f(3), f(3), f(3), f(12), null, null, null, 2, 3, 2, true, true, true, true, f(2)),
    err(RangeError, /^batchNormBackward: shift has 2 elements, needs channels = 3$/));
  assert.throws(() => ref.batchNormBackward(f(12), null, f(12), f(3), f(3), f(3), f(12), null, null, null, 2, 3, 2, true, true, true, true, null),
    err(TypeError, /^batchNormBackward: y or shift is required with relu$/));
  assert.throws(() => N.batchNormBackward(f(12), null, f(12), f(3), f(3), f(3), f(11), null, null, null, 2, 3, 2, true, false, true, true, null),
    err(RangeError, /^batchNormBackward: gradIn has 11 elements, needs n\*channels\*size = 12$/));
  assert.throws(() => N.batchNormBackward(f(12), null, f(12), f(3), f(3), f(3), f(12), null, null, f(11), 2, 3, 2, true, false, true, true, null),
    err(RangeError, /^batchNormBackward: gradResidual has 11 elements, needs n\*channels\*size = 12$/));
  const shared = f(24);
  assert.throws(() => N.batchNormBackward(f(12), null, f(12), f(3), f(3), f(3), shared.subarray(0, 12), null, null, shared.subarray(6, 18), 2, 3, 2, true, false, true, true, null),
    err(RangeError, /^batchNormBackward: gradResidual must not share memory with gradOut or gradIn$/));
  const gy = f(12);
  assert.throws(() => N.batchNormBackward(f(12), null, gy, f(3), f(3), f(3), null, null, null, gy, 2, 3, 2, true, false, true, true, null),
    err(RangeError, /^batchNormBackward: gradResidual must not share memory with gradOut or gradIn$/));
  assert.throws(() => N.addAct(f(4), f(3), f(4), 4, false), err(RangeError, /^addAct: b has 3 elements, needs n = 4$/));
  assert.throws(() => N.addActBackward(f(4), null, f(4), f(4), 4, true, true, true), err(TypeError, /^addActBackward: y must be a Float32Array with relu, got null$/));
  assert.throws(() => N.meanPlanes(f(4), f(2), 2, 0), err(RangeError, /^meanPlanes: size must be a positive integer, got 0$/));
  assert.throws(() => N.meanPlanesBackward(f(2), f(7), 2, 4), err(RangeError, /^meanPlanesBackward: gradIn has 7 elements, needs planes\*size = 8$/));
});

test('the norm kernels give bitwise identical results for 1, 2 and 3 threads', { skip }, () => {
  const rnd = prng(6);
  const before = native!.getThreads();
  const run = (threads: number, fn: () => Float32Array) => {
    native!.setThreads(threads);
    return Buffer.from(fn().buffer);
  };
  try {
    const [n, c, size] = [8, 16, 32 * 32];
    const total = n * c * size;
    const x = randomArray(total, rnd), gy = randomArray(total, rnd), y = randomArray(total, rnd), w = randomArray(c, rnd);
    const mean = randomArray(c, rnd), invstd = randomArray(c, rnd, 0.5, 2);
    const kernels: Array<[string, () => Float32Array]> = [
      ['channelMoments', () => { const m = new Float32Array(2 * c); N().channelMoments(x, m.subarray(0, c), m.subarray(c), n, c, size); return m; }],
      ['channelAffineAct', () => { const o = new Float32Array(total); N().channelAffineAct(x, w, mean, null, o, n, c, size, true); return o; }],
      ['channelAffineAct with a residual', () => { const o = new Float32Array(total); N().channelAffineAct(x, w, mean, y, o, n, c, size, true); return o; }],
      ['batchNormBackward', () => {
        const o = new Float32Array(total + 2 * c);
        N().batchNormBackward(x, y, gy, mean, invstd, w, o.subarray(0, total), o.subarray(total, total + c), o.subarray(total + c), null, n, c, size, true, true, true, true, null);
        return o;
      }],
      ['batchNormBackward, the ReLU mask from x', () => {
        const o = new Float32Array(total + 2 * c);
        N().batchNormBackward(x, null, gy, mean, invstd, w, o.subarray(0, total), o.subarray(total, total + c), o.subarray(total + c), null, n, c, size, true, true, false, true, mean);
        return o;
      }],
      ['batchNormBackward with a residual', () => {
        const o = new Float32Array(2 * total + 2 * c);
        N().batchNormBackward(x, y, gy, mean, invstd, w, o.subarray(0, total), o.subarray(total, total + c), o.subarray(total + c, total + 2 * c),
          o.subarray(total + 2 * c), n, c, size, true, true, false, false, null);
        return o;
      }],
      ['addAct', () => { const o = new Float32Array(total); N().addAct(x, y, o, total, true); return o; }],
      ['addActBackward', () => { const o = new Float32Array(2 * total); N().addActBackward(gy, y, o.subarray(0, total), o.subarray(total), total, true, true, false); return o; }],
      ['meanPlanes', () => { const o = new Float32Array(n * c); N().meanPlanes(x, o, n * c, size); return o; }],
      ['meanPlanesBackward', () => { const o = new Float32Array(total); N().meanPlanesBackward(gy.subarray(0, n * c), o, n * c, size); return o; }],
    ];
    for (const [name, fn] of kernels) {
      const one = run(1, fn);
      assert.deepEqual(run(2, fn), one, `${name}: 2 threads`);
      assert.deepEqual(run(3, fn), one, `${name}: 3 threads`);
    }
  } finally {
    native!.setThreads(before);
  }
});

function N(): NativeAddon {
  return native!;
}

test('the norm kernels give bitwise the same results on every SIMD path, and the reference\'s within rounding', { skip }, () => {
  const rnd = prng(7);
  const before = native!.simdPath();
  try {
    // Plane sizes that leave every tail: none, a partial 8-lane block, a lone value.
    for (const [n, c, size] of [[3, 5, 1023], [2, 4, 33], [4, 3, 7], [2, 2, 1], [3, 16, 64]] as Array<[number, number, number]>) {
      const total = n * c * size;
      const x = randomArray(total, rnd), gy = randomArray(total, rnd), y = randomArray(total, rnd), w = randomArray(c, rnd);
      const scale = randomArray(c, rnd), shift = randomArray(c, rnd), invstd = randomArray(c, rnd, 0.5, 2);
      y[3] = NaN;
      const run = (be: typeof ref) => {
        const m = new Float32Array(2 * c);
        be.channelMoments(x, m.subarray(0, c), m.subarray(c), n, c, size);
        const mean = m.subarray(0, c);
        const a = new Float32Array(total), ar = new Float32Array(total);
        be.channelAffineAct(x, scale, shift, null, a, n, c, size, true);
        be.channelAffineAct(x, scale, shift, y, ar, n, c, size, false);
        const g = randomArray(2 * total + 2 * c, prng(size)), g2 = g.slice();
        be.batchNormBackward(x, y, gy, mean, invstd, w, g.subarray(0, total), g.subarray(total, total + c), g.subarray(total + c, total + 2 * c),
          g.subarray(total + 2 * c), n, c, size, true, true, true, true, null);
        be.batchNormBackward(x, null, gy, mean, invstd, w, g2.subarray(0, total), g2.subarray(total, total + c), g2.subarray(total + c, total + 2 * c),
          g2.subarray(total + 2 * c), n, c, size, true, false, false, false, null);
        const g3 = randomArray(total + 2 * c, prng(size + 1));
        be.batchNormBackward(x, null, gy, mean, invstd, w, g3.subarray(0, total), g3.subarray(total, total + c), g3.subarray(total + c),
          null, n, c, size, true, true, true, true, shift);
        const p = new Float32Array(n * c);
        be.meanPlanes(x, p, n * c, size);
        return { m, a, ar, g, g2, g3, p };
      };
      const want = run(ref);
      const got = ['avx512', 'avx2', 'scalar'].map((path) => {
        native!.setSimd(path as 'avx512');
        return run(native!);
      });
      for (const k of ['m', 'a', 'ar', 'g', 'g2', 'g3', 'p'] as const) {
        for (const r of got.slice(1)) assert.deepEqual(Buffer.from(r[k].buffer), Buffer.from(got[0][k].buffer), `${[n, c, size]} ${k}: SIMD paths differ`);
        close(got[0][k], want[k], `${[n, c, size]} ${k} against the reference`, 2e-5);
      }
    }
  } finally {
    native!.setSimd(before);
  }
});
