/**
 * The native sequence kernels (an LSTM layer's recurrence, row softmax, layer norm, causal
 * attention; native/seq.cc) against the reference backend, on odd sizes (0, 1, not
 * multiples of a vector width), with the aliasing the ops rely on (softmax in place), NaN,
 * thread counts, and argument validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, type NativeAddon } from './index.js';
import { prng, randomArray } from './testing.js';

const loaded = loadNative();
const native: NativeAddon | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

function close(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    const ok = Number.isNaN(b[i]) ? Number.isNaN(a[i]) : Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i]));
    assert.ok(ok, `${what}[${i}]: native ${a[i]}, reference ${b[i]}`);
  }
}

const SIZES: Array<[number, number]> = [[0, 3], [1, 1], [3, 5], [7, 17], [32, 64]];

/** lstmSequence then lstmSequenceBackward on `be`: gates, c, h, gradGates and gradH after, side by side. */
function lstmRun(be: Pick<NativeAddon, 'lstmSequence' | 'lstmSequenceBackward'>, pre: Float32Array, whh: Float32Array, gradOut: Float32Array,
  n: number, T: number, H: number): Float32Array {
  const g = pre.slice(), c = new Float32Array(T * n * H), h = c.slice(), gh = gradOut.slice(), dg = new Float32Array(T * n * 4 * H);
  be.lstmSequence(g, whh, c, h, n, T, H);
  be.lstmSequenceBackward(g, c, whh, gh, dg, n, T, H);
  return Float32Array.from([...g, ...c, ...h, ...dg, ...gh]);
}

// [n, T, H]: empty, one step (the cell alone), hidden sizes that leave partial GEMM panels.
const LSTM_SIZES: Array<[number, number, number]> = [[0, 3, 4], [2, 0, 4], [1, 1, 1], [3, 1, 5], [3, 4, 5], [7, 6, 17], [32, 5, 64]];

test('lstmSequence and lstmSequenceBackward match the reference over several steps', { skip }, () => {
  const rnd = prng(1);
  for (const [n, T, H] of LSTM_SIZES) {
    const pre = randomArray(T * n * 4 * H, rnd, -3, 3), whh = randomArray(4 * H * H, rnd, -0.5, 0.5), gradOut = randomArray(T * n * H, rnd);
    close(lstmRun(native!, pre, whh, gradOut, n, T, H), lstmRun(ref, pre, whh, gradOut, n, T, H), 1e-5, `lstm ${n}x${T}x${H}`);
  }
});

test('softmaxRows (plain and causal, in place) and its backward match the reference; NaN spreads over its row', { skip }, () => {
  const rnd = prng(2);
  for (const [rows, cols] of SIZES) {
    for (const causal of [false, true]) {
      const x = randomArray(rows * cols, rnd, -8, 8);
      const y1 = new Float32Array(rows * cols), y2 = x.slice();
      ref.softmaxRows(x, y1, rows, cols, causal);
      native!.softmaxRows(y2, y2, rows, cols, causal);
      close(y2, y1, 1e-6, `softmax ${rows}x${cols} causal=${causal}`);
      const go = randomArray(rows * cols, rnd), gi1 = new Float32Array(rows * cols), gi2 = go.slice();
      ref.softmaxRowsBackward(y1, go, gi1, rows, cols);
      native!.softmaxRowsBackward(y1, gi2, gi2, rows, cols);
      close(gi2, gi1, 1e-5, `softmax backward ${rows}x${cols}`);
    }
  }
  const x = Float32Array.of(1, NaN, 2, 3, 1, 2);
  const out = new Float32Array(6);
  native!.softmaxRows(x, out, 2, 3, false);
  assert.ok(out.subarray(0, 3).every(Number.isNaN));
  assert.ok(out.subarray(3).every((v) => !Number.isNaN(v)));
  // Causal: row r of a [3, 3] block sees columns 0..r; the masked NaN in row 0 is never read.
  const causal = new Float32Array(9);
  native!.softmaxRows(Float32Array.of(0, NaN, NaN, 0, 0, NaN, 0, 0, 0), causal, 3, 3, true);
  assert.deepEqual([...causal].map((v) => +v.toFixed(4)), [1, 0, 0, 0.5, 0.5, 0, 0.3333, 0.3333, 0.3333]);
});

test('layerNorm and layerNormBackward match the reference (gradients accumulate, or the input gradient overwrites; null weight gradients)', { skip }, () => {
  const rnd = prng(3);
  for (const [rows, cols] of SIZES) {
    const x = randomArray(rows * cols, rnd, -4, 6), gamma = randomArray(cols, rnd), beta = randomArray(cols, rnd);
    const y1 = new Float32Array(rows * cols), y2 = y1.slice(), m1 = new Float32Array(rows), m2 = m1.slice(), r1 = m1.slice(), r2 = m1.slice();
    ref.layerNorm(x, gamma, beta, y1, m1, r1, rows, cols, 1e-5);
    native!.layerNorm(x, gamma, beta, y2, m2, r2, rows, cols, 1e-5);
    close(y2, y1, 1e-5, `layerNorm ${rows}x${cols}`);
    close(r2, r1, 1e-5, `rstd ${rows}x${cols}`);
    const go = randomArray(rows * cols, rnd), gx0 = randomArray(rows * cols, rnd), gg0 = randomArray(cols, rnd), gb0 = randomArray(cols, rnd);
    const [gx1, gx2, gg1, gg2, gb1, gb2] = [gx0.slice(), gx0.slice(), gg0.slice(), gg0.slice(), gb0.slice(), gb0.slice()];
    ref.layerNormBackward(x, gamma, m1, r1, go, gx1, gg1, gb1, rows, cols, true);
    native!.layerNormBackward(x, gamma, m1, r1, go, gx2, gg2, gb2, rows, cols, true);
    close(gx2, gx1, 1e-4, `gradX ${rows}x${cols}`);
    close(gg2, gg1, 1e-4, `gradGamma ${rows}x${cols}`);
    close(gb2, gb1, 1e-4, `gradBeta ${rows}x${cols}`);
    const gx3 = gx0.slice();
    native!.layerNormBackward(x, gamma, m1, r1, go, gx3, null, null, rows, cols, true);
    close(gx3, gx1, 1e-4, `gradX without weight gradients ${rows}x${cols}`);
    // Overwritten: the bits of adding to zeros, the old contents (NaN) never read.
    const fromZero = new Float32Array(rows * cols), over = new Float32Array(rows * cols).fill(NaN), refOver = over.slice();
    native!.layerNormBackward(x, gamma, m1, r1, go, fromZero, null, null, rows, cols, true);
    native!.layerNormBackward(x, gamma, m1, r1, go, over, null, null, rows, cols, false);
    assert.deepEqual(over, fromZero, `gradX overwritten ${rows}x${cols}`);
    ref.layerNormBackward(x, gamma, m1, r1, go, refOver, null, null, rows, cols, false);
    close(refOver, fromZero, 1e-4, `reference gradX overwritten ${rows}x${cols}`);
  }
});

test('lstmSequence and its backward: the same bits at every thread count on each SIMD path; one step (the cell alone) on every path', { skip }, () => {
  const rnd = prng(11);
  const before = { simd: native!.simdPath(), threads: native!.getThreads() };
  try {
    for (const [n, T, H] of [[64, 1, 256], [3, 1, 5], [40, 1, 33], [32, 6, 256], [7, 5, 17]]) {
      const pre = randomArray(T * n * 4 * H, rnd, -8, 8), whh = randomArray(4 * H * H, rnd, -0.3, 0.3), gradOut = randomArray(T * n * H, rnd);
      const paths = (['avx512', 'avx2', 'scalar'] as const).map((path) => [1, 2, 3].map((threads) => {
        native!.setSimd(path);
        native!.setThreads(threads);
        return lstmRun(native!, pre, whh, gradOut, n, T, H);
      }));
      // With more than one step the GEMM's bits differ between paths (their micro-kernels' chains); the cell's do not.
      const runs = T === 1 ? paths.flat() : paths[0];
      for (const r of runs.slice(1)) assert.deepEqual(Buffer.from(r.buffer), Buffer.from(runs[0].buffer), `${n}x${T}x${H}: SIMD paths or thread counts differ`);
      for (const path of paths) for (const r of path.slice(1)) assert.deepEqual(Buffer.from(r.buffer), Buffer.from(path[0].buffer), `${n}x${T}x${H}: thread counts differ`);
    }
  } finally {
    native!.setSimd(before.simd);
    native!.setThreads(before.threads);
  }
});

test('softmaxRows and its backward: the same bits on every SIMD path (rows of 1 to 70 entries, causal and not, NaN)', { skip }, () => {
  const rnd = prng(9);
  const before = native!.simdPath();
  try {
    for (const cols of [1, 3, 7, 8, 9, 16, 17, 31, 64, 70]) {
      const rows = 2 * cols + 1, x = randomArray(rows * cols, rnd, -30, 30), go = randomArray(rows * cols, rnd);
      x[cols + 1] = NaN;
      const runs = (['avx512', 'avx2', 'scalar'] as const).map((path) => {
        native!.setSimd(path);
        const y = new Float32Array(rows * cols), yc = y.slice(), gi = y.slice();
        native!.softmaxRows(x, y, rows, cols, false);
        native!.softmaxRows(x, yc, rows, cols, true);
        native!.softmaxRowsBackward(yc, go, gi, rows, cols);
        return Float32Array.from([...y, ...yc, ...gi]);
      });
      for (const r of runs.slice(1)) assert.deepEqual(Buffer.from(r.buffer), Buffer.from(runs[0].buffer), `${cols} columns: SIMD paths differ`);
    }
  } finally {
    native!.setSimd(before);
  }
});

/** causalAttention then its backward on one backend; gradQkv starts from `g0` (the backward adds). */
function attention(be: typeof ref, qkv: Float32Array, gy: Float32Array, g0: Float32Array, n: number, T: number, heads: number, dim: number) {
  const y = new Float32Array(n * T * dim), q = new Float32Array(n * T * dim), k = q.slice(), v = q.slice();
  const p = new Float32Array(n * heads * T * T), g = g0.slice();
  be.causalAttention(qkv, y, q, k, v, p, n, T, heads, dim);
  be.causalAttentionBackward(gy, q, k, v, p, g, n, T, heads, dim, true);
  return { y, q, k, v, p, g };
}

// Heads of 1 to 32 features (the products' vector groups of 8 or 16 and their scalar tails)
// over 1 to 130 positions (pairs and blocks of 4 and 8 rows with their remainders, column
// groups of 4 vectors); 4,400 blocks (more than the pool's 4,096 parts: several blocks a part).
const ATTENTION: Array<[number, number, number, number]> = [[0, 4, 2, 8], [1, 1, 1, 3], [2, 5, 2, 8], [2, 9, 3, 9], [3, 17, 4, 64], [1, 40, 1, 5],
  [2, 35, 2, 48], [1, 38, 1, 32], [1, 33, 2, 34], [1100, 3, 4, 8], [2, 130, 4, 64]];

test('causalAttention and its backward match the reference; the same bits at 1, 2 and 3 threads and on every SIMD path', { skip }, () => {
  const rnd = prng(7);
  const before = { simd: native!.simdPath(), threads: native!.getThreads() };
  try {
    for (const [n, T, heads, dim] of ATTENTION) {
      const qkv = randomArray(n * T * 3 * dim, rnd, -2, 2), gy = randomArray(n * T * dim, rnd), g0 = randomArray(n * T * 3 * dim, rnd);
      const want = attention(ref, qkv, gy, g0, n, T, heads, dim);
      let first: Uint32Array | null = null;
      for (const path of ['avx512', 'avx2', 'scalar'] as const) {
        for (const threads of [1, 2, 3]) {
          native!.setSimd(path);
          native!.setThreads(threads);
          const got = attention(native!, qkv, gy, g0, n, T, heads, dim);
          const what = `n=${n} T=${T} heads=${heads} dim=${dim} ${path} threads=${threads}`;
          for (const key of ['y', 'q', 'k', 'v', 'p', 'g'] as const) close(got[key], want[key], 1e-5, `${key} ${what}`);
          const bits = new Uint32Array(Float32Array.from([...got.y, ...got.p, ...got.g]).buffer);
          if (first === null) first = bits;
          else assert.deepEqual(bits, first, `${what}: bits differ from the first path at 1 thread`);
        }
      }
    }
  } finally {
    native!.setSimd(before.simd);
    native!.setThreads(before.threads);
  }
});

test('causalAttentionBackward overwrites gradQkv when not accumulating: the bits of adding to zeros, its old contents never read', { skip }, () => {
  const rnd = prng(8);
  for (const [n, T, heads, dim] of [[2, 9, 3, 9], [2, 130, 4, 64]] as const) {
    const qkv = randomArray(n * T * 3 * dim, rnd, -2, 2), gy = randomArray(n * T * dim, rnd);
    for (const be of [native!, ref]) {
      const zeros = attention(be, qkv, gy, new Float32Array(n * T * 3 * dim), n, T, heads, dim);
      const g = new Float32Array(n * T * 3 * dim).fill(NaN);
      be.causalAttentionBackward(gy, zeros.q, zeros.k, zeros.v, zeros.p, g, n, T, heads, dim, false);
      assert.deepEqual(g, zeros.g, `${be.name}: n=${n} T=${T} heads=${heads} dim=${dim}`);
    }
  }
});

test('causalAttention: each position attends only to itself and earlier ones; the first to itself alone', { skip }, () => {
  const rnd = prng(8);
  const [n, T, heads, dim] = [2, 6, 2, 4];
  const qkv = randomArray(n * T * 3 * dim, rnd, -2, 2);
  const run = (x: Float32Array) => {
    const y = new Float32Array(n * T * dim), q = new Float32Array(n * T * dim), p = new Float32Array(n * heads * T * T);
    native!.causalAttention(x, y, q, q.slice(), q.slice(), p, n, T, heads, dim);
    return { y, p };
  };
  const { y, p } = run(qkv);
  for (let i = 0; i < n * heads; i++) {
    for (let t = 0; t < T; t++) for (let j = t + 1; j < T; j++) assert.equal(p[(i * T + t) * T + j], 0, `block ${i}: row ${t} sees ${j}`);
    assert.equal(p[i * T * T], 1, `block ${i}: the first position attends to itself alone`);
  }
  // The first position's output is its own value vector, whatever the later positions hold.
  const changed = qkv.slice();
  for (let i = 3 * dim; i < T * 3 * dim; i++) changed[i] += 1;
  const after = run(changed).y;
  for (let j = 0; j < dim; j++) assert.equal(after[j], y[j]);
  for (let j = 0; j < dim; j++) assert.equal(y[j], qkv[2 * dim + j]);
});

test('layerNorm and its backward on the pool: the reference\'s values, the same bits at 1, 2 and 3 threads', { skip }, () => {
  const rnd = prng(10);
  const before = native!.getThreads();
  try {
    for (const [rows, cols] of [[700, 64], [4099, 9]] as Array<[number, number]>) {
      const x = randomArray(rows * cols, rnd, -3, 3), gamma = randomArray(cols, rnd), beta = randomArray(cols, rnd), go = randomArray(rows * cols, rnd);
      const gx0 = randomArray(rows * cols, rnd), gg0 = randomArray(cols, rnd), gb0 = randomArray(cols, rnd);
      const run = (be: typeof ref) => {
        const out = new Float32Array(rows * cols), mean = new Float32Array(rows), rstd = new Float32Array(rows);
        be.layerNorm(x, gamma, beta, out, mean, rstd, rows, cols, 1e-5);
        const gx = gx0.slice(), gg = gg0.slice(), gb = gb0.slice();
        be.layerNormBackward(x, gamma, mean, rstd, go, gx, gg, gb, rows, cols, true);
        return Float32Array.from([...out, ...mean, ...rstd, ...gx, ...gg, ...gb]);
      };
      const want = run(ref);
      const runs = [1, 2, 3].map((threads) => {
        native!.setThreads(threads);
        return run(native!);
      });
      close(runs[0], want, 1e-4, `${rows}x${cols}`);
      for (const r of runs.slice(1)) assert.deepEqual(Buffer.from(r.buffer), Buffer.from(runs[0].buffer), `${rows}x${cols}: thread counts differ`);
    }
  } finally {
    native!.setThreads(before);
  }
});

test('the sequence kernels check their arguments', { skip }, () => {
  const f = (len: number) => new Float32Array(len);
  // n=1, T=2, hidden=2: gates 16, c and h 4, weightHh 16.
  assert.throws(() => native!.lstmSequence(f(15), f(16), f(4), f(4), 1, 2, 2), /gates has 15 elements, needs steps\*n\*4\*hidden = 16/);
  assert.throws(() => native!.lstmSequence(f(16), f(15), f(4), f(4), 1, 2, 2), /weightHh/);
  const shared = f(8);
  assert.throws(() => native!.lstmSequence(f(16), f(16), shared.subarray(0, 4), shared.subarray(2, 6), 1, 2, 2), /c must not share memory with h/);
  assert.throws(() => native!.lstmSequenceBackward(f(16), f(4), f(16), f(3), f(16), 1, 2, 2), /gradH/);
  const g = f(16);
  assert.throws(() => native!.lstmSequenceBackward(g, f(4), f(16), f(4), g, 1, 2, 2), /gradGates must not share memory with gates/);
  assert.throws(() => native!.softmaxRows(new Float32Array(5), new Float32Array(6), 2, 3, false), /x/);
  assert.throws(() => native!.layerNorm(new Float32Array(6), new Float32Array(2), new Float32Array(3), new Float32Array(6), new Float32Array(2), new Float32Array(2), 2, 3, 1e-5), /gamma/);
  // n=1, T=2, heads=2, dim=4: qkv 24, out/q/k/v 8, p 8.
  assert.throws(() => native!.causalAttention(f(24), f(8), f(8), f(8), f(8), f(8), 1, 2, 3, 4), /dim \(4\) must be a positive multiple of heads \(3\)/);
  assert.throws(() => native!.causalAttention(f(24), f(8), f(8), f(8), f(8), f(8), 1, 2, 0, 4), /heads/);
  assert.throws(() => native!.causalAttention(f(23), f(8), f(8), f(8), f(8), f(8), 1, 2, 2, 4), /qkv/);
  assert.throws(() => native!.causalAttention(f(24), f(8), f(8), f(8), f(8), f(7), 1, 2, 2, 4), /p has 7/);
  assert.throws(() => native!.causalAttentionBackward(f(8), f(8), f(8), f(8), f(8), f(23), 1, 2, 2, 4, true), /gradQkv/);
});
