/**
 * The native sparse kernels (spmm, sddmm, transpose, adamSparse, sgdSparse) against the
 * reference backend, and both against dense masked kernels: random shapes and densities,
 * density 0, a single nonzero, empty rows and columns, odd batch sizes and strides,
 * argument validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, type Backend } from './index.js';

const loaded = loadNative();
const native: Backend | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = (n: number, rnd: () => number) => Float32Array.from({ length: n }, () => rnd() * 2 - 1);

/** A random mask [rows, cols] of about `density`, with row `emptyRow` and column `emptyCol` all zero. */
function mask(rows: number, cols: number, density: number, rnd: () => number, emptyRow = -1, emptyCol = -1): Float32Array {
  const m = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[r * cols + c] = r !== emptyRow && c !== emptyCol && rnd() < density ? 1 : 0;
  return m;
}

/** CSR and CSC of a mask. */
function compress(m: Float32Array, rows: number, cols: number) {
  const rowPtr = new Int32Array(rows + 1), colPtr = new Int32Array(cols + 1);
  const colIdx: number[] = [], rowIdx: number[] = [], flat: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) if (m[r * cols + c]) { colIdx.push(c); flat.push(r * cols + c); }
    rowPtr[r + 1] = colIdx.length;
  }
  for (let c = 0; c < cols; c++) {
    for (let r = 0; r < rows; r++) if (m[r * cols + c]) rowIdx.push(r);
    colPtr[c + 1] = rowIdx.length;
  }
  return { rowPtr, colIdx: Int32Array.from(colIdx), colPtr, rowIdx: Int32Array.from(rowIdx), flat: Int32Array.from(flat) };
}

function close(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= tol * Math.max(1, Math.abs(b[i]))) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
    }
  }
}

/** Runs the sparse forward/backward of y = x·Wᵀ + b on backend `be`; returns y, gx, gW (transposed buffers are padded to ld). */
function sparseLayer(be: Backend, x: Float32Array, w: Float32Array, bias: Float32Array, gy: Float32Array,
  m: Float32Array, n: number, inF: number, outF: number, ld: number, relu: boolean) {
  const ix = compress(m, outF, inF);
  const xT = new Float32Array(inF * ld).fill(NaN), yT = new Float32Array(outF * ld);
  be.transpose(x, xT, n, inF, inF, ld, false);
  be.spmm(w, ix.rowPtr, ix.colIdx, inF, 1, xT, yT, bias, outF, ld, ld, false, relu);
  const y = new Float32Array(n * outF);
  be.transpose(yT, y, outF, n, ld, outF, false);
  const gyT = new Float32Array(outF * ld), gxT = new Float32Array(inF * ld);
  be.transpose(gy, gyT, n, outF, outF, ld, false);
  const gw = new Float32Array(outF * inF);
  be.sddmm(gyT, ix.rowPtr, ix.colIdx, inF, 1, xT, gw, outF, ld, ld);
  be.spmm(w, ix.colPtr, ix.rowIdx, 1, inF, gyT, gxT, null, inF, ld, ld, false, false);
  const gx = new Float32Array(n * inF);
  be.transpose(gxT, gx, inF, n, ld, inF, true);
  return { y, gx, gw };
}

/** The dense masked layer on the reference backend (W already zero outside the mask). */
function denseLayer(x: Float32Array, w: Float32Array, bias: Float32Array, gy: Float32Array, m: Float32Array,
  n: number, inF: number, outF: number, relu: boolean) {
  const y = new Float32Array(n * outF);
  ref.matmul(x, w, y, n, inF, outF, false, true, false);
  ref.biasAct(y, bias, y, n, outF, relu);
  const gx = new Float32Array(n * inF), gw = new Float32Array(outF * inF);
  ref.matmul(gy, x, gw, outF, n, inF, true, false, false);
  ref.applyMask(gw, m, outF * inF);
  ref.matmul(gy, w, gx, n, outF, inF, false, false, false);
  return { y, gx, gw };
}

const cases: Array<[string, number, number, number, number, number, number]> = [
  // name, n, in, out, density, emptyRow, emptyCol
  ['density 0', 7, 9, 5, 0, -1, -1],
  ['one nonzero', 3, 4, 6, 0, -1, -1],
  ['empty row and column', 60, 33, 17, 0.3, 4, 7],
  ['LeNet fc3 batch 60', 60, 100, 10, 0.2, -1, -1],
  ['odd batch 1', 1, 20, 13, 0.5, 2, 0],
  ['batch 70 (64 + 6)', 70, 40, 21, 0.1, -1, 3],
  ['dense mask', 17, 12, 9, 1, -1, -1],
  ['big: fc1 at 3.6%, batch 60', 60, 784, 300, 0.036, 0, 0],
];

for (const [name, n, inF, outF, density, er, ec] of cases) {
  test(`sparse layer ${name}: native = reference = dense masked`, { skip }, () => {
    const rnd = prng(n * 1000 + inF * 7 + outF);
    const m = mask(outF, inF, density, rnd, er, ec);
    if (name === 'one nonzero') m[2 * inF + 3] = 1;
    const w = rand(outF * inF, rnd);
    for (let i = 0; i < w.length; i++) if (!m[i]) w[i] = 0;
    const x = rand(n * inF, rnd), bias = rand(outF, rnd), gy = rand(n * outF, rnd);
    for (const relu of [false, true]) {
      for (const ld of [n, (n + 15) & ~15, ((n + 15) & ~15) + 16]) {
        const r = sparseLayer(ref, x, w, bias, gy, m, n, inF, outF, Math.max(ld, 1), relu);
        const nat = sparseLayer(native!, x, w, bias, gy, m, n, inF, outF, Math.max(ld, 1), relu);
        const d = denseLayer(x, w, bias, gy, m, n, inF, outF, relu);
        for (const k of ['y', 'gx', 'gw'] as const) {
          close(nat[k], r[k], 1e-4, `${k} native vs reference (relu ${relu}, ld ${ld})`);
          close(r[k], d[k], 1e-4, `${k} sparse vs dense (relu ${relu}, ld ${ld})`);
        }
      }
    }
  });
}

test('spmm accumulate and NaN propagation; transpose pads with zeros', { skip }, () => {
  const rnd = prng(5);
  const rows = 5, inRows = 8, n = 37, ld = 48;
  const m = mask(rows, inRows, 0.5, rnd);
  const ix = compress(m, rows, inRows);
  const w = rand(rows * inRows, rnd), inT = rand(inRows * ld, rnd);
  inT[3 * ld + 5] = NaN;
  const [outRef, outNat] = [rand(rows * ld, prng(9)), rand(rows * ld, prng(9))];
  ref.spmm(w, ix.rowPtr, ix.colIdx, inRows, 1, inT, outRef, null, rows, n, ld, true, true);
  native!.spmm(w, ix.rowPtr, ix.colIdx, inRows, 1, inT, outNat, null, rows, n, ld, true, true);
  close(outNat, outRef, 1e-5, 'accumulate');
  assert.ok(Number.isNaN(outRef[0 * ld + 5]) || !m[3], 'NaN propagates through a nonzero reading it');
  const x = rand(3 * 5, rnd);
  for (const be of [ref, native!]) {
    const t = new Float32Array(5 * 16).fill(7);
    be.transpose(x, t, 3, 5, 5, 16, false);
    for (let c = 0; c < 5; c++) for (let r = 0; r < 16; r++) assert.equal(t[c * 16 + r], r < 3 ? x[r * 5 + c] : 0);
  }
});

test('adamSparse/sgdSparse equal the masked dense updates (within float contraction) and zero the gradient at the nonzeros', { skip }, () => {
  const rnd = prng(11);
  const n = 5000;
  const m = mask(1, n, 0.1, rnd);
  const { flat } = compress(m, 1, n);
  for (const be of [ref, native!]) {
    const p0 = rand(n, rnd);
    for (let i = 0; i < n; i++) if (!m[i]) p0[i] = 0;
    const g = rand(n, rnd);
    for (let i = 0; i < n; i++) if (!m[i]) g[i] = 0;
    const [pd, md, vd] = [Float32Array.from(p0), new Float32Array(n), new Float32Array(n)];
    const [ps, ms, vs] = [Float32Array.from(p0), new Float32Array(n), new Float32Array(n)];
    for (let step = 1; step <= 3; step++) {
      be.adam(pd, g, md, vd, m, n, 1e-3, 0.9, 0.999, 1e-8, step);
      const gs = Float32Array.from(g);
      be.adamSparse(ps, gs, ms, vs, flat, flat.length, 1e-3, 0.9, 0.999, 1e-8, step);
      assert.ok(gs.every((v) => v === 0));
    }
    close(ps, pd, 1e-6, 'ps ({be.name})');
    close(ms, md, 1e-6, 'ms ({be.name})');
    close(vs, vd, 1e-6, 'vs ({be.name})');
    const [pd2, bd] = [Float32Array.from(p0), new Float32Array(n)];
    const [ps2, bs] = [Float32Array.from(p0), new Float32Array(n)];
    for (let step = 0; step < 3; step++) {
      be.sgd(pd2, g, bd, m, n, 0.1, 0.9, 1e-4);
      be.sgdSparse(ps2, Float32Array.from(g), bs, flat, flat.length, 0.1, 0.9, 1e-4);
    }
    close(ps2, pd2, 1e-6, 'ps2 ({be.name})');
    close(bs, bd, 1e-6, 'bs ({be.name})');
  }
});

test('sparse kernels validate their arguments', { skip }, () => {
  const nb = native!;
  const f = new Float32Array(16);
  assert.throws(() => nb.spmm(f, Int32Array.of(0, 1), Int32Array.of(99), 4, 1, f, new Float32Array(16), null, 1, 4, 4, false, false), RangeError);
  assert.throws(() => nb.spmm(f, Int32Array.of(0, 2, 1), Int32Array.of(0, 1), 4, 1, f, new Float32Array(16), null, 2, 4, 4, false, false), /non-decreasing/);
  assert.throws(() => nb.spmm(f, Int32Array.of(0, 1), Int32Array.of(-1), 4, 1, f, new Float32Array(16), null, 1, 4, 4, false, false), /negative/);
  assert.throws(() => nb.spmm(f, Int32Array.of(0, 1), Int32Array.of(0), 4, 1, f, f, null, 1, 4, 4, false, false), /share memory/);
  assert.throws(() => nb.transpose(f, new Float32Array(3), 4, 4, 4, 4, false), RangeError);
  assert.throws(() => nb.adamSparse(f, f.slice(), f.slice(), f.slice(), Int32Array.of(16), 1, 1e-3, 0.9, 0.999, 1e-8, 1), /outside/);
  assert.throws(() => nb.sddmm(f, Int32Array.of(0, 1), Int32Array.of(0), 4, 1, f, new Float32Array(16), 1, 5, 4), /n = 5/);
  assert.throws(() => nb.spmm(f as never, Float32Array.of(0, 1) as never, Int32Array.of(0), 4, 1, f, new Float32Array(16), null, 1, 4, 4, false, false), TypeError);
});
