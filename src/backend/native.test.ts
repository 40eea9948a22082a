/**
 * The native addon against the reference backend: random and edge shapes for every
 * transpose/accumulate combination, the LeNet-300-100 shapes, NaN propagation, masks,
 * argument validation, every SIMD path (child processes with LTH_SIMD set),
 * bitwise independence of the thread count, and the huge-page hint.
 */
import { test } from 'node:test';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, type NativeAddon } from './index.js';
import { child, nativeChildPrelude, onEverySimdPath, prng, randomArray } from './testing.js';

const loaded = loadNative();
const native: NativeAddon | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

/**
 * Checks native matmul against the reference: |c - c_ref| <= 1e-5·√k·(|c0| + ‖op(A)ᵢ‖·‖op(B)ⱼ‖),
 * a relative tolerance scaled by the size of the products (Cauchy-Schwarz bounds Σₚ|aᵢₚ·bₚⱼ|).
 */
function checkMatmul(
  m: number, k: number, n: number, transA: boolean, transB: boolean, accumulate: boolean, rnd: () => number,
): void {
  const a = randomArray(m * k, rnd), b = randomArray(k * n, rnd);
  const c0 = randomArray(m * n + 3, rnd);  // 3 spare elements that must stay untouched
  const cRef = c0.slice(), cNat = c0.slice();
  ref.matmul(a, b, cRef, m, k, n, transA, transB, accumulate);
  native!.matmul(a, b, cNat, m, k, n, transA, transB, accumulate);
  const rowNorm = new Float64Array(m), colNorm = new Float64Array(n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) rowNorm[i] += (transA ? a[p * m + i] : a[i * k + p]) ** 2;
  for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) colNorm[j] += (transB ? b[j * k + p] : b[p * n + j]) ** 2;
  const tol = 1e-5 * Math.sqrt(Math.max(k, 1));
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const scale = (accumulate ? Math.abs(c0[i * n + j]) : 0) + Math.sqrt(rowNorm[i] * colNorm[j]);
      const got = cNat[i * n + j], want = cRef[i * n + j];
      if (!(Math.abs(got - want) <= tol * scale + 1e-30)) {
        assert.fail(`matmul m=${m} k=${k} n=${n} transA=${transA} transB=${transB} accumulate=${accumulate}: ` +
          `c[${i},${j}] = ${got}, reference ${want} (scale ${scale})`);
      }
    }
  }
  for (let i = m * n; i < m * n + 3; i++) assert.equal(cNat[i], c0[i], 'matmul wrote past m*n');
}

const FLAGS: [boolean, boolean, boolean][] = [];
for (const tA of [false, true]) for (const tB of [false, true]) for (const acc of [false, true]) FLAGS.push([tA, tB, acc]);

test('native addon loads', () => {
  if (loaded instanceof Error) assert.fail(`native addon did not load: ${loaded.message}`);
  assert.equal(native!.name, 'native');
  assert.ok(['avx512', 'avx2', 'scalar'].includes(native!.simdPath()), `simd = ${native!.simdPath()}`);
  assert.ok(native!.getThreads() >= 1);
});

test('matmul: edge and odd sizes, every transpose/accumulate combination', { skip }, () => {
  const rnd = prng(1);
  const sizes = [0, 1, 3, 7, 17, 33, 65, 129];
  // Every size for each dimension with the others small, then random triples.
  const shapes: [number, number, number][] = [];
  for (const s of sizes) shapes.push([s, 3, 5], [4, s, 2], [3, 6, s], [s, s, s > 33 ? 7 : s]);
  for (let t = 0; t < 16; t++) {
    shapes.push([sizes[1 + Math.floor(rnd() * 7)], sizes[1 + Math.floor(rnd() * 7)], sizes[1 + Math.floor(rnd() * 7)]]);
  }
  for (const [m, k, n] of shapes) for (const [tA, tB, acc] of FLAGS) checkMatmul(m, k, n, tA, tB, acc, rnd);
});

test('matmul: every row count of a last row panel (the micro-kernels\' partial panels), full and half column panels', { skip }, () => {
  const rnd = prng(11);
  for (let m = 1; m <= 26; m++) for (const n of [13, 37]) for (const [tA, tB, acc] of FLAGS) checkMatmul(m, 21, n, tA, tB, acc, rnd);
});

test('matmul: a row of C has the same bits whether its row panel is full or partial, on every SIMD path', { skip }, () => onEverySimdPath(native!, (path) => {
  // The micro-kernels skip the multiply-adds of rows a last panel lacks; each element's
  // chain must stay the one a full panel gives it. The first m rows of a 24-row product
  // are those of an m-row product with the same operands.
  const rnd = prng(12);
  const rows = 24, k = 37;
  for (const n of [5, 13, 40]) for (const [tA, tB, acc] of FLAGS) {
    const a = randomArray(rows * k, rnd), b = randomArray(k * n, rnd), c0 = randomArray(rows * n, rnd);
    const full = c0.slice();
    native!.matmul(a, b, full, rows, k, n, tA, tB, acc);
    for (let m = 1; m < rows; m++) {
      // op(A)'s first m rows: the first m*k values, or with transA the first m of each column.
      const am = tA ? Float32Array.from({ length: m * k }, (_, i) => a[Math.floor(i / m) * rows + (i % m)]) : a.subarray(0, m * k);
      const part = c0.slice(0, m * n);
      native!.matmul(am, b, part, m, k, n, tA, tB, acc);
      for (let i = 0; i < m * n; i++) {
        if (!Object.is(part[i], full[i])) {
          assert.fail(`${path}: m=${m} n=${n} transA=${tA} transB=${tB} accumulate=${acc}: c[${Math.floor(i / n)},${i % n}] = ${part[i]}, ` +
            `${full[i]} in the ${rows}-row product`);
        }
      }
    }
  }
}));

/**
 * For each [m, k, n], random A [m, k], B [k, n] and C: C by `packed` on one thread (from
 * the transposed copy `transposed` makes), then by `inPlace` on one and two threads, for
 * each of `variants` (its name goes into the message); every element must have the same
 * bits. The addon's thread count is restored after.
 */
function sameBitsOverThreads(
  path: string, seed: number, shapes: ReadonlyArray<readonly [number, number, number]>, variants: ReadonlyArray<{ name: string; transB: boolean; acc: boolean }>,
  transposed: (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => Float32Array,
  packed: (a: Float32Array, b: Float32Array, t: Float32Array, c: Float32Array, m: number, k: number, n: number, transB: boolean, acc: boolean) => void,
  inPlace: (a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, transB: boolean, acc: boolean) => void,
  from: readonly [string, string],
): void {
  const rnd = prng(seed);
  const before = native!.getThreads();
  try {
    for (const [m, k, n] of shapes) {
      const a = randomArray(m * k, rnd), b = randomArray(k * n, rnd), c0 = randomArray(m * n, rnd);
      const t = transposed(a, b, m, k, n);
      for (const { name, transB, acc } of variants) {
        const want = c0.slice();
        native!.setThreads(1);
        packed(a, b, t, want, m, k, n, transB, acc);
        for (const threads of [1, 2]) {
          native!.setThreads(threads);
          const got = c0.slice();
          inPlace(a, b, got, m, k, n, transB, acc);
          for (let i = 0; i < m * n; i++) {
            if (!Object.is(got[i], want[i])) {
              assert.fail(`${path}, ${threads} thread(s): m=${m} k=${k} n=${n} ${name}: ` +
                `c[${Math.floor(i / n)},${i % n}] = ${got[i]} from ${from[0]}, ${want[i]} from ${from[1]}`);
            }
          }
        }
      }
    }
  } finally {
    native!.setThreads(before);
  }
}

/** The rows × cols matrix x transposed (cols × rows). */
function transposed(x: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(cols * rows);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
  return t;
}

const accumulateOrNot = [false, true].map((acc) => ({ name: `accumulate=${acc}`, transB: false, acc }));

test('matmul: op(A) read in place (A) has the bits of op(A) packed (Aᵀ with transA), on every SIMD path, over the threads', { skip }, () => onEverySimdPath(native!, (path) => {
  // The AVX kernels read A's rows unpacked where a panel's rows are a micro-kernel's own
  // row count and pack them otherwise; Aᵀ with transA is always packed. Each element's
  // multiply-adds are the same either way. Shapes: every panel read in place (12, 24, 60,
  // 64 rows), a last panel packed (5, 13, 62 rows), k past a k-block (400), n with
  // half and partial column panels, and a product big enough for the pool's parts.
  sameBitsOverThreads(path, 13, [[12, 37, 5], [24, 401, 40], [60, 900, 256], [64, 96, 64], [5, 37, 13], [13, 450, 20], [62, 64, 70]],
    [...accumulateOrNot, ...[false, true].map((acc) => ({ name: `transB accumulate=${acc}`, transB: true, acc }))],
    (a, _b, m, k) => transposed(a, m, k),
    (_a, b, at, c, m, k, n, tB, acc) => native!.matmul(at, b, c, m, k, n, true, tB, acc),
    (a, b, c, m, k, n, tB, acc) => native!.matmul(a, b, c, m, k, n, false, tB, acc),
    ['A', 'Aᵀ']);
}));

test('matmul: op(B) read in place (B) has the bits of op(B) packed (Bᵀ with transB), on every SIMD path, over the threads', { skip }, () => onEverySimdPath(native!, (path) => {
  // The driver reads B's rows unpacked where they are at most 1024 floats and a column
  // block is whole panels, and packs them otherwise; Bᵀ with transB is always packed.
  // Each element's multiply-adds are the same either way. Shapes: rows of whole panels on
  // every path (64, 96, 128, 1024 columns), k past a k-block (401, 900), partial row panels,
  // a partial last panel (70 columns) and rows too long (2048), both packed.
  sameBitsOverThreads(path, 14, [[12, 37, 64], [60, 401, 128], [64, 64, 96], [5, 900, 1024], [13, 450, 128], [62, 64, 70], [24, 40, 2048]],
    accumulateOrNot,
    (_a, b, _m, k, n) => transposed(b, k, n),
    (a, _b, bt, c, m, k, n, _tB, acc) => native!.matmul(a, bt, c, m, k, n, false, true, acc),
    (a, b, c, m, k, n, _tB, acc) => native!.matmul(a, b, c, m, k, n, false, false, acc),
    ['B', 'Bᵀ']);
}));

test('matmul: LeNet-300-100 shapes', { skip }, () => {
  const rnd = prng(2);
  checkMatmul(60, 784, 300, false, true, false, rnd);   // forward X·W1ᵀ
  checkMatmul(60, 300, 100, false, true, false, rnd);   // forward X·W2ᵀ
  checkMatmul(60, 100, 10, false, true, false, rnd);    // forward X·W3ᵀ
  checkMatmul(300, 60, 784, true, false, false, rnd);   // gW1 = gYᵀ·X
  checkMatmul(100, 60, 300, true, false, true, rnd);    // gW2, accumulated
  checkMatmul(10, 60, 100, true, false, false, rnd);    // gW3
  checkMatmul(60, 100, 300, false, false, false, rnd);  // gX = gY·W2
  checkMatmul(60, 10, 100, false, false, false, rnd);   // gX = gY·W3
  checkMatmul(130, 100, 40, false, true, false, rnd);   // m > n: split by rows when threaded
  checkMatmul(37, 1000, 45, true, true, true, rnd);     // k spanning several cache blocks
});

test('matmul: k = 0 zeroes C or leaves it unchanged; m = 0 or n = 0 is a no-op', { skip }, () => {
  const c = new Float32Array([1, 2, 3, 4, 5, 6]);
  native!.matmul(new Float32Array(0), new Float32Array(0), c, 2, 0, 3, false, false, true);
  assert.deepEqual([...c], [1, 2, 3, 4, 5, 6]);
  native!.matmul(new Float32Array(0), new Float32Array(0), c, 2, 0, 3, true, true, false);
  assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
  const d = new Float32Array([7]);
  native!.matmul(new Float32Array(0), new Float32Array(5), d, 0, 5, 1, false, false, false);
  native!.matmul(new Float32Array(5), new Float32Array(0), d, 1, 5, 0, false, false, false);
  assert.deepEqual([...d], [7]);
});

test('matmul: NaN and Inf propagate; stale NaN in C is overwritten', { skip }, () => {
  const rnd = prng(3);
  for (const [m, k, n] of [[60, 784, 300], [5, 9, 40], [13, 3, 70]] as const) {
    for (const [tA, tB] of [[false, false], [true, true], [false, true], [true, false]] as const) {
      const a = randomArray(m * k, rnd), b = randomArray(k * n, rnd);
      const ia = m - 1, pa = k >> 1;  // NaN at op(A)[ia, pa]: row ia of C is NaN
      a[tA ? pa * m + ia : ia * k + pa] = NaN;
      const pb = 0, jb = n - 1;        // Inf at op(B)[pb, jb] against a zero: column jb is NaN
      b[tB ? jb * k + pb : pb * n + jb] = Infinity;
      for (let i = 0; i < m; i++) a[tA ? pb * m + i : i * k + pb] = 0;
      const c = new Float32Array(m * n).fill(NaN);
      native!.matmul(a, b, c, m, k, n, tA, tB, false);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          const v = c[i * n + j];
          if (i === ia || j === jb) assert.ok(Number.isNaN(v), `c[${i},${j}] should be NaN`);
          else assert.ok(Number.isFinite(v), `c[${i},${j}] = ${v} should be finite`);
        }
      }
    }
  }
});

test('matmul: results are bitwise identical for 1 and 2 threads', { skip }, () => {
  const rnd = prng(4);
  const before = native!.getThreads();
  try {
    for (const [m, k, n, tA, tB] of [
      [60, 784, 300, false, true], [300, 60, 784, true, false], [1000, 100, 10, false, true],
      [131, 257, 515, true, true], [61, 400, 97, false, false],
      // Over kBigWork (gemm.cc): few column tiles (one chunk per thread), and many (more chunks).
      [60, 9000, 256, false, true], [200, 400, 512, false, false],
      // Split by rows over kBigWork, op(B) packed once for all the parts (a partial last panel).
      [1030, 300, 250, true, false], [1100, 260, 200, false, true],
    ] as const) {
      const a = randomArray(m * k, rnd), b = randomArray(k * n, rnd);
      // Row 0 of op(A) is float32 denormals: every thread must treat them as zero (DAZ).
      for (let p = 0; p < k; p++) a[tA ? p * m : p] = 1e-39;
      const c1 = new Float32Array(m * n), c2 = new Float32Array(m * n), c3 = new Float32Array(m * n);
      native!.setThreads(1);
      native!.matmul(a, b, c1, m, k, n, tA, tB, false);
      native!.setThreads(2);
      native!.matmul(a, b, c2, m, k, n, tA, tB, false);
      native!.setThreads(3);
      native!.matmul(a, b, c3, m, k, n, tA, tB, false);
      assert.deepEqual(Buffer.from(c2.buffer), Buffer.from(c1.buffer), `m=${m} k=${k} n=${n}, 2 threads`);
      assert.deepEqual(Buffer.from(c3.buffer), Buffer.from(c1.buffer), `m=${m} k=${k} n=${n}, 3 threads`);
      assert.ok(c2.subarray(0, n).every((x) => x === 0), 'denormal row flushed on every thread');
    }
  } finally {
    native!.setThreads(before);
  }
});

test('biasAct, reluBackward, sumRows match the reference (sumRows over the pool too: the same bits at 1, 2 and 3 threads)', { skip }, () => {
  const rnd = prng(5);
  const before = native!.getThreads();
  try {
    // 300 x 1000: past the pool's threshold, 16 groups of 64 columns, the last of 40.
    for (const [rows, cols] of [[300, 1000], [2000, 70]] as const) {
      const g = randomArray(rows * cols, rnd), s0 = randomArray(cols, rnd), want = s0.slice();
      ref.sumRows(g, want, rows, cols, true);
      for (const threads of [1, 2, 3]) {
        native!.setThreads(threads);
        const got = s0.slice();
        native!.sumRows(g, got, rows, cols, true);
        assert.deepEqual(got, want, `sumRows ${rows}x${cols}, ${threads} threads`);
      }
    }
  } finally {
    native!.setThreads(before);
  }
  for (const [rows, cols] of [[0, 4], [1, 1], [7, 33], [60, 300]] as const) {
    const x = randomArray(rows * cols, rnd), bias = randomArray(cols, rnd);
    if (x.length > 2) x[1] = NaN;
    for (const relu of [false, true]) {
      const o1 = new Float32Array(rows * cols), o2 = new Float32Array(rows * cols);
      ref.biasAct(x, bias, o1, rows, cols, relu);
      native!.biasAct(x, bias, o2, rows, cols, relu);
      assert.deepEqual(o2, o1);
      const inPlace = x.slice();
      native!.biasAct(inPlace, bias, inPlace, rows, cols, relu);
      assert.deepEqual(inPlace, o1);
    }
    const g = randomArray(rows * cols, rnd), y = randomArray(rows * cols, rnd);
    if (g.length > 4) {
      // Non-finite gradients where the mask drops them (y <= 0, y NaN) and where it keeps one.
      [g[0], y[0]] = [NaN, -1];
      [g[1], y[1]] = [Infinity, 0];
      [g[2], y[2]] = [-Infinity, 1];
      [g[3], y[3]] = [NaN, NaN];
    }
    const gi1 = new Float32Array(rows * cols), gi2 = new Float32Array(rows * cols);
    ref.reluBackward(g, y, gi1, rows * cols);
    native!.reluBackward(g, y, gi2, rows * cols);
    assert.deepEqual(gi2, gi1);
    if (g.length > 4) assert.deepEqual([...gi2.subarray(0, 4)], [0, 0, -Infinity, 0]);
    const inPlace = g.slice();
    native!.reluBackward(inPlace, y, inPlace, rows * cols);
    assert.deepEqual(inPlace, gi1);
    for (const acc of [false, true]) {
      const s0 = randomArray(cols, rnd), s1 = s0.slice(), s2 = s0.slice();
      ref.sumRows(g, s1, rows, cols, acc);
      native!.sumRows(g, s2, rows, cols, acc);
      assert.deepEqual(s2, s1);
    }
  }
});

test('softmaxXent and countCorrect match the reference; NaN logits give NaN', { skip }, () => {
  const rnd = prng(6);
  for (const [rows, cols] of [[1, 1], [3, 10], [60, 10], [7, 300]] as const) {
    const logits = randomArray(rows * cols, rnd, -20, 20);
    const labels = new Int32Array(rows);
    for (let i = 0; i < rows; i++) labels[i] = Math.floor(rnd() * cols);
    const g1 = new Float32Array(rows * cols), g2 = new Float32Array(rows * cols);
    const l1 = ref.softmaxXent(logits, labels, rows, cols, g1, 1 / rows);
    const l2 = native!.softmaxXent(logits, labels, rows, cols, g2, 1 / rows);
    assert.ok(Math.abs(l2 - l1) <= 1e-6 * Math.max(1, Math.abs(l1)), `loss ${l2} vs ${l1}`);
    for (let i = 0; i < g1.length; i++) assert.ok(Math.abs(g2[i] - g1[i]) <= 1e-6, `grad[${i}] ${g2[i]} vs ${g1[i]}`);
    assert.equal(native!.softmaxXent(logits, labels, rows, cols, null, 1), l2);
    assert.equal(native!.countCorrect(logits, labels, rows, cols), ref.countCorrect(logits, labels, rows, cols));
  }
  const logits = new Float32Array([1, 2, 3, 4, NaN, 6]);
  const labels = new Int32Array([2, 0]);
  const grad = new Float32Array(6);
  assert.ok(Number.isNaN(native!.softmaxXent(logits, labels, 2, 3, grad, 1)));
  assert.ok(Number.isNaN(grad[3]) && Number.isNaN(grad[5]) && Number.isFinite(grad[0]));
  // Ties go to the first maximum.
  assert.equal(native!.countCorrect(new Float32Array([5, 5, 1, 2, 7, 7]), new Int32Array([0, 1]), 2, 3), 2);
});

test('adam, sgd and applyMask match the reference and zero masked entries, on every SIMD path', { skip }, () => onEverySimdPath(native!, (path) => {
  const rnd = prng(7);
  for (const n of [0, 1, 15, 17, 1000, 4099]) {
    const mask = new Float32Array(n);
    for (let i = 0; i < n; i++) mask[i] = rnd() < 0.3 ? 0 : 1;
    if (n > 15) mask[3] = NaN; // kept, as any nonzero
    for (const useMask of [false, true]) {
      const p1 = randomArray(n, rnd), g = randomArray(n, rnd);
      // A NaN weight outside the mask is zeroed, not carried.
      const dead = mask.findIndex((x) => x === 0);
      if (useMask && dead >= 0) p1[dead] = NaN;
      const m1 = randomArray(n, rnd, -0.1, 0.1), v1 = randomArray(n, rnd, 0, 0.01);
      const p2 = p1.slice(), m2 = m1.slice(), v2 = v1.slice();
      // Both consume the gradient: it is zero after each step.
      const consumed = (run: (grad: Float32Array) => void) => {
        const grad = g.slice();
        run(grad);
        assert.ok(grad.every((x) => x === 0), 'gradient zeroed');
      };
      for (let step = 1; step <= 3; step++) {
        consumed((gr) => ref.adam(p1, gr, m1, v1, useMask ? mask : null, n, 1e-3, 0.9, 0.999, 1e-8, step));
        consumed((gr) => native!.adam(p2, gr, m2, v2, useMask ? mask : null, n, 1e-3, 0.9, 0.999, 1e-8, step));
      }
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(p2[i] - p1[i]) <= 1e-6 * (1 + Math.abs(p1[i])), `adam p[${i}] ${p2[i]} vs ${p1[i]}`);
        assert.ok(Math.abs(m2[i] - m1[i]) <= 1e-6 * (1e-2 + Math.abs(m1[i])), `adam m[${i}] ${m2[i]} vs ${m1[i]}`);
        assert.ok(Math.abs(v2[i] - v1[i]) <= 1e-5 * (1e-6 + Math.abs(v1[i])), `adam v[${i}] ${v2[i]} vs ${v1[i]}`);
        if (useMask && mask[i] === 0) assert.ok(Object.is(p2[i], 0) && Object.is(m2[i], 0) && Object.is(v2[i], 0), `${path}: adam masked ${i}`);
      }
      const q1 = randomArray(n, rnd), b1 = randomArray(n, rnd, -0.1, 0.1);
      const q2 = q1.slice(), b2 = b1.slice();
      for (let step = 0; step < 3; step++) {
        consumed((gr) => ref.sgd(q1, gr, b1, useMask ? mask : null, n, 0.1, 0.9, 5e-4));
        consumed((gr) => native!.sgd(q2, gr, b2, useMask ? mask : null, n, 0.1, 0.9, 5e-4));
      }
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(q2[i] - q1[i]) <= 1e-5 * (1 + Math.abs(q1[i])), `sgd p[${i}] ${q2[i]} vs ${q1[i]}`);
        assert.ok(Math.abs(b2[i] - b1[i]) <= 1e-5 * (1 + Math.abs(b1[i])), `sgd buf[${i}] ${b2[i]} vs ${b1[i]}`);
        if (useMask && mask[i] === 0) assert.ok(Object.is(q2[i], 0) && Object.is(b2[i], 0), `${path}: sgd masked ${i}`);
      }
    }
    const x1 = randomArray(n, rnd), x2 = x1.slice();
    ref.applyMask(x1, mask, n);
    native!.applyMask(x2, mask, n);
    assert.deepEqual(x2, x1);
  }
}));

test('arguments are validated with clear errors', { skip }, () => {
  const N = native!;
  const f = (n: number) => new Float32Array(n);
  const err = (type: typeof TypeError, re: RegExp) => (e: unknown) => e instanceof type && re.test((e as Error).message);
  assert.throws(() => N.matmul(f(6), f(8), f(10), 3, 2, 4, false, false, false),
    err(RangeError, /^matmul: c has 10 elements, needs m\*n = 12$/));
  assert.throws(() => N.matmul(f(5), f(8), f(12), 3, 2, 4, false, false, false),
    err(RangeError, /^matmul: a has 5 elements, needs m\*k = 6$/));
  assert.throws(() => N.matmul(f(6), f(7), f(12), 3, 2, 4, true, true, false),
    err(RangeError, /^matmul: b has 7 elements, needs k\*n = 8$/));
  assert.throws(() => N.matmul(new Float64Array(6) as unknown as Float32Array, f(8), f(12), 3, 2, 4, false, false, false),
    err(TypeError, /^matmul: a must be a Float32Array, got Float64Array$/));
  assert.throws(() => N.matmul(f(6), [] as unknown as Float32Array, f(12), 3, 2, 4, false, false, false),
    err(TypeError, /^matmul: b must be a Float32Array, got object$/));
  assert.throws(() => N.matmul(f(6), f(8), f(12), 3.5, 2, 4, false, false, false),
    err(RangeError, /^matmul: m must be a non-negative integer, got 3.5$/));
  assert.throws(() => N.matmul(f(6), f(8), f(12), -3, 2, 4, false, false, false),
    err(RangeError, /^matmul: m must be a non-negative integer/));
  assert.throws(() => N.matmul(f(6), f(8), f(12), 3, '2' as unknown as number, 4, false, false, false),
    err(TypeError, /^matmul: k must be a number, got string$/));
  assert.throws(() => N.matmul(f(6), f(8), f(12), 3, 2, 4, 0 as unknown as boolean, false, false),
    err(TypeError, /^matmul: transA must be a boolean, got number$/));
  assert.throws(() => (N.matmul as unknown as (...a: unknown[]) => void)(f(6), f(8), f(12), 3, 2, 4),
    err(TypeError, /^matmul: expected 9 arguments, got 6$/));
  const shared = f(24);
  assert.throws(() => N.matmul(shared.subarray(0, 6), f(8), shared.subarray(4, 16), 3, 2, 4, false, false, false),
    err(RangeError, /^matmul: c must not share memory with a$/));
  assert.throws(() => N.biasAct(f(6), f(2), f(6), 2, 3, true), err(RangeError, /^biasAct: bias has 2 elements, needs cols = 3$/));
  assert.throws(() => N.reluBackward(f(3), f(4), f(4), 4), err(RangeError, /^reluBackward: gradOut has 3 elements, needs n = 4$/));
  assert.throws(() => N.sumRows(f(6), f(2), 2, 3, false), err(RangeError, /^sumRows: out has 2 elements, needs cols = 3$/));
  assert.throws(() => N.softmaxXent(f(6), new Int32Array([0, 3]), 2, 3, null, 1),
    err(RangeError, /^softmaxXent: labels\[1\] = 3 is outside \[0, 3\)$/));
  assert.throws(() => N.softmaxXent(f(6), new Float32Array(2) as unknown as Int32Array, 2, 3, null, 1),
    err(TypeError, /^softmaxXent: labels must be an Int32Array, got Float32Array$/));
  assert.throws(() => N.softmaxXent(f(6), new Int32Array(2), 2, 3, f(5), 1),
    err(RangeError, /^softmaxXent: grad has 5 elements, needs rows\*cols = 6$/));
  assert.throws(() => N.countCorrect(f(6), new Int32Array(1), 2, 3), err(RangeError, /^countCorrect: labels has 1 elements, needs rows = 2$/));
  assert.throws(() => N.adam(f(4), f(4), f(4), f(4), f(3), 4, 1e-3, 0.9, 0.999, 1e-8, 1),
    err(RangeError, /^adam: mask has 3 elements, needs n = 4$/));
  assert.throws(() => N.adam(f(4), f(4), f(4), f(4), 1 as unknown as Float32Array, 4, 1e-3, 0.9, 0.999, 1e-8, 1),
    err(TypeError, /^adam: mask must be a Float32Array or null, got number$/));
  assert.throws(() => N.sgd(f(4), f(4), f(3), null, 4, 0.1, 0.9, 0), err(RangeError, /^sgd: buf has 3 elements, needs n = 4$/));
  assert.throws(() => N.applyMask(f(4), f(3), 4), err(RangeError, /^applyMask: mask has 3 elements, needs n = 4$/));
  assert.throws(() => native!.setThreads(0), err(RangeError, /^setThreads: n must be an integer from 1 to 256, got 0$/));
});

test('gatherRows copies the indexed rows like the reference, on 1 and 2 threads, and rejects bad indices', { skip }, () => {
  const rnd = prng(11);
  const before = native!.getThreads();
  try {
    for (const [rows, rowSize, count] of [[50, 784, 60], [5, 3, 7], [1, 1, 1], [100, 17, 0]]) {
      const src = randomArray(rows * rowSize, rnd);
      const indices = Int32Array.from({ length: count + 5 }, () => Math.floor(rnd() * rows));
      const want = new Float32Array(count * rowSize);
      ref.gatherRows(src, rowSize, indices, 3, count, want);
      for (const threads of [1, 2]) {
        native!.setThreads(threads);
        const got = new Float32Array(count * rowSize + 1).fill(-7);
        native!.gatherRows(src, rowSize, indices, 3, count, got);
        assert.deepEqual(got.subarray(0, count * rowSize), want, `${rows}x${rowSize}, ${count} rows, ${threads} threads`);
        assert.equal(got[count * rowSize], -7, 'nothing written past the batch');
      }
    }
  } finally {
    native!.setThreads(before);
  }
  for (const be of [ref, native!]) {
    assert.throws(() => be.gatherRows(new Float32Array(6), 3, Int32Array.from([0, 2]), 0, 2, new Float32Array(6)),
      { name: 'RangeError', message: /^gatherRows: indices\[1\] = 2 is not a row of src \(2 rows\)$/ }, be.name);
    assert.throws(() => be.gatherRows(new Float32Array(6), 3, Int32Array.from([-1]), 0, 1, new Float32Array(3)),
      { name: 'RangeError', message: /^gatherRows: indices\[0\] = -1 is not a row of src/ }, be.name);
  }
  assert.throws(() => native!.gatherRows(new Float32Array(6), 3, Int32Array.from([0]), 0, 2, new Float32Array(6)),
    { name: 'RangeError', message: /^gatherRows: indices has 1 elements, needs from \+ count = 2$/ });
});

test('holdCore: a thread holding a core leaves the others the cores left, until it lets go or exits', { skip }, async () => {
  const before = native!.getThreads();
  // All cores in the pool, so that holding one takes a thread away.
  const cores = availableParallelism();
  native!.setThreads(cores);
  try {
    assert.equal(native!.threadsHere(), cores);
    const program = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { loadNative } = await import(workerData.index);
      const n = loadNative();
      n.serialThread();
      n.holdCore(true);
      parentPort.postMessage(n.threadsHere());
      parentPort.once('message', (m) => { if (m === 'release') { n.holdCore(false); parentPort.postMessage('released'); } });`;
    const start = () => {
      const w = new Worker(`(async () => { ${program} })()`, { eval: true, workerData: { index: new URL('./index.js', import.meta.url).href } });
      return { w, next: () => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); }) };
    };
    const a = start();
    assert.equal(await a.next(), 1, 'the holding thread itself runs serially');
    assert.equal(native!.threadsHere(), Math.max(1, cores - 1), 'held: this thread gets one thread fewer');
    a.w.postMessage('release');
    assert.equal(await a.next(), 'released');
    assert.equal(native!.threadsHere(), cores, 'released');
    await a.w.terminate();
    const b = start();
    await b.next();
    assert.equal(native!.threadsHere(), Math.max(1, cores - 1));
    await b.w.terminate();
    assert.equal(native!.threadsHere(), cores, 'a thread that exits while holding gives its core back');
    assert.throws(() => native!.holdCore(1 as unknown as boolean), { name: 'TypeError' });
  } finally {
    native!.setThreads(before);
  }
});

test('denormals are flushed inside the kernels, and JavaScript keeps its own', { skip }, () => {
  // 1e-39 is a float32 denormal: with DAZ the product is 0 (the reference gives 1e-39).
  const c = new Float32Array(1);
  native!.matmul(new Float32Array([1e-39]), new Float32Array([1]), c, 1, 1, 1, false, false, false);
  assert.equal(c[0], 0);
  const p = new Float32Array([0.5]), m = new Float32Array(1), v = new Float32Array(1);
  native!.adam(p, new Float32Array([1e-38]), m, v, null, 1, 1e-3, 0.9, 0.999, 1e-8, 1);
  assert.equal(m[0], 0, '0.1 * 1e-38 is a denormal, flushed to zero');
  // MXCSR is restored when the kernel returns: double denormals still work in JS.
  const tiny = [Number.MIN_VALUE, 2];
  assert.equal(tiny[0] * tiny[1], 1e-323);
  assert.ok(tiny[0] > 0);
});

const INDEX_URL = new URL('./index.js', import.meta.url).href;

/** Child program: native vs reference on random shapes, and a hash of big GEMM results. */
const CHECK_PROGRAM = `
import { createHash } from 'node:crypto';
${nativeChildPrelude(INDEX_URL)}const full = process.env.LTH_TEST_CHECK === 'full';
let s = 12345;
const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296 * 2 - 1; };
const arr = (n) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = rnd(); return a; };
const sizes = [1, 3, 7, 17, 33, 65];
let worst = 0;
const shapes = [[60, 100, 30], [130, 60, 40], [0, 5, 3], [4, 0, 9]];
for (let t = 0; t < 8; t++) shapes.push([0, 1, 2].map(() => sizes[Math.floor((rnd() + 1) / 2 * 6)]));
if (!full) shapes.length = 0;
for (const [m, k, n] of shapes) for (let f = 0; f < 8; f++) {
  const tA = !!(f & 1), tB = !!(f & 2), acc = !!(f & 4);
  const a = arr(m * k), b = arr(k * n), c0 = arr(m * n), c1 = c0.slice(), c2 = c0.slice();
  R.matmul(a, b, c1, m, k, n, tA, tB, acc); N.matmul(a, b, c2, m, k, n, tA, tB, acc);
  for (let i = 0; i < m * n; i++) {
    const e = Math.abs(c1[i] - c2[i]) / (1e-5 * Math.sqrt(Math.max(k, 1)) * (1 + Math.abs(c1[i]) + Math.sqrt(k)));
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
}
const P = full ? 4099 : 0, p1 = arr(P), g = arr(P), m1 = new Float32Array(P), v1 = new Float32Array(P), mask = arr(P).map((x) => (x < 0 ? 0 : 1));
const p2 = p1.slice(), m2 = m1.slice(), v2 = v1.slice();
R.adam(p1, g.slice(), m1, v1, mask, P, 1e-3, 0.9, 0.999, 1e-8, 1); N.adam(p2, g.slice(), m2, v2, mask, P, 1e-3, 0.9, 0.999, 1e-8, 1);
let adamErr = 0;
for (let i = 0; i < P; i++) adamErr = Math.max(adamErr, Math.abs(p1[i] - p2[i]) / (1 + Math.abs(p1[i])));
const hash = createHash('sha256');
for (const [m, k, n, tA, tB] of [[60, 784, 300, 0, 1], [300, 60, 784, 1, 0], [1000, 100, 10, 0, 1], [131, 257, 515, 1, 1]]) {
  const a = arr(m * k), b = arr(k * n), c = new Float32Array(m * n);
  N.matmul(a, b, c, m, k, n, !!tA, !!tB, false);
  hash.update(Buffer.from(c.buffer));
}
console.log(JSON.stringify({ simd: N.simdPath(), threads: N.getThreads(), worst, adamErr, hash: hash.digest('hex') }));
`;

test('every SIMD path matches the reference (LTH_SIMD children)', { skip }, async () => {
  const paths = ['avx512', 'avx2', 'scalar'];
  const runs = await Promise.all(paths.map((path) => child({ LTH_SIMD: path, LTH_THREADS: '2', LTH_TEST_CHECK: 'full' }, CHECK_PROGRAM)));
  const results: Record<string, Record<string, unknown>> = {};
  paths.forEach((path, i) => {
    const r = runs[i];
    assert.equal(r.error, undefined, `LTH_SIMD=${path}: ${String(r.error)}`);
    results[path] = r;
    assert.ok((r.worst as number) <= 1, `LTH_SIMD=${path}: matmul error ${String(r.worst)}× the tolerance`);
    assert.ok((r.adamErr as number) <= 1e-6, `LTH_SIMD=${path}: adam error ${String(r.adamErr)}`);
  });
  assert.equal(results.scalar.simd, 'scalar');
  assert.ok(['avx2', 'scalar'].includes(results.avx2.simd as string));
  assert.ok(['avx512', 'avx2', 'scalar'].includes(results.avx512.simd as string));
  if (!process.env.LTH_SIMD) assert.equal(results.avx512.simd, native!.simdPath(), 'LTH_SIMD=avx512 gives the best path this CPU has');
});

test('LTH_THREADS=1 and LTH_THREADS=2 give bitwise identical matmul results', { skip }, async () => {
  const [one, two] = await Promise.all([child({ LTH_THREADS: '1' }, CHECK_PROGRAM), child({ LTH_THREADS: '2' }, CHECK_PROGRAM)]);
  assert.equal(one.threads, 1);
  assert.equal(two.threads, 2);
  assert.equal(two.hash, one.hash);
});

test('a bad LTH_SIMD or LTH_THREADS is a clear error when the run context is resolved', { skip }, async () => {
  const [bad, badThreads] = await Promise.all([
    child({ LTH_SIMD: 'sse9' }, CHECK_PROGRAM), child({ LTH_THREADS: 'many' }, CHECK_PROGRAM)]);
  assert.match(String(bad.error), /LTH_SIMD must be 'avx512', 'avx2' or 'scalar', got 'sse9'/);
  assert.match(String(badThreads.error), /LTH_THREADS must be an integer from 1 to 256, got 'many'/);
});

test('adviseHugePages: a hint that leaves the array as it was; the data set loaders ask for it', { skip }, () => {
  const a = new Float32Array(3 << 20);  // 12 MiB: several aligned 2 MiB pages
  const asked = native!.adviseHugePages(a);
  assert.equal(typeof asked, 'boolean');
  // Where the kernel has transparent huge pages the advice is taken.
  if (existsSync('/sys/kernel/mm/transparent_hugepage/enabled')) assert.equal(asked, true);
  a[a.length - 1] = 2;
  assert.equal(a[a.length - 1], 2);
  assert.equal(a[0], 0);
  assert.equal(native!.adviseHugePages(new Float32Array(4)), false, 'no whole 2 MiB page inside');
  assert.equal(ref.adviseHugePages(a), false);
  assert.throws(() => native!.adviseHugePages(new Float64Array(4) as unknown as Float32Array), /array must be a Float32Array, got Float64Array/);
});
