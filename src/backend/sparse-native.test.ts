/**
 * The native sparse kernels (sparsePattern, sparseForward, sparseInputGrad,
 * sparseWeightGrad, toPanels, fromPanels) against the reference backend, and
 * both against dense masked kernels: random shapes and densities, density 0, a single
 * nonzero, empty rows and columns, rows longer than the 16-nonzero reduction, every
 * column-chunk width, odd batches, padding, NaN, thread-count independence, argument
 * validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as ref, loadNative, type Backend, type NativeAddon } from './index.js';
import { panelColumns, panelIndex } from './backend.js';
import { onEverySimdPath, prng, randomArray } from './testing.js';

const loaded = loadNative();
const native: NativeAddon | null = loaded instanceof Error ? null : loaded;
const skip = native === null;

/** A random mask [rows, cols] of about `density`, with row `emptyRow` and column `emptyCol` all zero. */
function mask(rows: number, cols: number, density: number, rnd: () => number, emptyRow = -1, emptyCol = -1): Float32Array {
  const m = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[r * cols + c] = r !== emptyRow && c !== emptyCol && rnd() < density ? 1 : 0;
  return m;
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

/** The sparse forward/backward of y = act(x·Wᵀ + b) on backend `be`: y, gx, gW, gb (dense) and the raw panels. */
function sparseLayer(be: Backend, x: Float32Array, w: Float32Array, bias: Float32Array, gy: Float32Array,
  m: Float32Array, n: number, inF: number, outF: number, ld: number, relu: boolean) {
  const p = be.sparsePattern(m, outF, inF);
  const cols = panelColumns(ld);
  const xT = new Float32Array(inF * cols).fill(NaN), yT = new Float32Array(outF * cols);
  be.toPanels(x, xT, n, inF, ld);
  const vals = Float32Array.from(p.flat, (i) => w[i]);
  be.sparseForward(p, vals, xT, yT, bias, n, ld, relu);
  const y = new Float32Array(n * outF);
  be.fromPanels(yT, y, n, outF, ld, false);
  const gyT = new Float32Array(outF * cols), gxT = new Float32Array(inF * cols);
  // The relu gradient, as the op does it: gy where y > 0.
  const gyMasked = relu ? gy.map((g, i) => (y[i] > 0 ? g : 0)) : gy;
  be.toPanels(gyMasked, gyT, n, outF, ld);
  const gvals = new Float32Array(p.nnz), gb = new Float32Array(outF);
  be.sparseWeightGrad(p, gyT, xT, gvals, gb, ld);
  be.sparseInputGrad(p, vals, gyT, gxT, ld);
  const gx = new Float32Array(n * inF);
  be.fromPanels(gxT, gx, n, inF, ld, true);
  const gw = new Float32Array(outF * inF);
  for (let k = 0; k < p.nnz; k++) gw[p.flat[k]] = gvals[k];
  return { y, gx, gw, gb, yT, gxT };
}

/** The dense masked layer on the reference backend (W already zero outside the mask). */
function denseLayer(x: Float32Array, w: Float32Array, bias: Float32Array, gy: Float32Array, m: Float32Array,
  n: number, inF: number, outF: number, relu: boolean) {
  const y = new Float32Array(n * outF);
  ref.matmul(x, w, y, n, inF, outF, false, true, false);
  ref.biasAct(y, bias, y, n, outF, relu);
  const g = relu ? gy.map((v, i) => (y[i] > 0 ? v : 0)) : gy;
  const gx = new Float32Array(n * inF), gw = new Float32Array(outF * inF);
  ref.matmul(g, x, gw, outF, n, inF, true, false, false);
  ref.applyMask(gw, m, outF * inF);
  ref.matmul(g, w, gx, n, outF, inF, false, false, false);
  const gb = new Float32Array(outF);
  ref.sumRows(g, gb, n, outF, false);
  return { y, gx, gw, gb };
}

const cases: Array<[string, number, number, number, number, number, number]> = [
  // name, n, in, out, density, emptyRow, emptyCol
  ['density 0', 7, 9, 5, 0, -1, -1],
  ['one nonzero', 3, 4, 6, 0, -1, -1],
  ['empty row and column', 60, 33, 17, 0.3, 4, 7],
  ['rows of 40 nonzeros (two full 16-groups and a tail)', 21, 40, 9, 1, -1, -1],
  ['LeNet fc3 batch 60', 60, 100, 10, 0.2, -1, -1],
  ['odd batch 1', 1, 20, 13, 0.5, 2, 0],
  ['batch 70 (two column chunks)', 70, 40, 21, 0.1, -1, 3],
  ['batch 200 (4 chunks, the last of 16 columns)', 200, 19, 11, 0.4, -1, -1],
  ['big: fc1 at 3.6%, batch 60', 60, 784, 300, 0.036, 0, 0],
];

for (const [name, n, inF, outF, density, er, ec] of cases) {
  test(`sparse layer ${name}: native (every SIMD path) = reference = dense masked`, { skip }, () => onEverySimdPath(native!, (path) => {
    const rnd = prng(n * 1000 + inF * 7 + outF);
    const m = mask(outF, inF, density, rnd, er, ec);
    if (name === 'one nonzero') m[2 * inF + 3] = 1;
    const w = randomArray(outF * inF, rnd);
    for (let i = 0; i < w.length; i++) if (!m[i]) w[i] = 0;
    const x = randomArray(n * inF, rnd), bias = randomArray(outF, rnd), gy = randomArray(n * outF, rnd);
    const ld0 = Math.max(16, (n + 15) & ~15);
    for (const relu of [false, true]) {
      for (const ld of [ld0, ld0 + 16, ld0 + 48]) {
        const r = sparseLayer(ref, x, w, bias, gy, m, n, inF, outF, ld, relu);
        const nat = sparseLayer(native!, x, w, bias, gy, m, n, inF, outF, ld, relu);
        const d = denseLayer(x, w, bias, gy, m, n, inF, outF, relu);
        for (const k of ['y', 'gx', 'gw', 'gb'] as const) {
          close(nat[k], r[k], 1e-4, `${path}: ${k} native vs reference (relu ${relu}, ld ${ld})`);
          close(r[k], d[k], 1e-4, `${k} sparse vs dense (relu ${relu}, ld ${ld})`);
        }
        for (const [t, features] of [[nat.yT, outF], [nat.gxT, inF]] as const) {
          for (let row = 0; row < features; row++) {
            for (let c = n; c < ld; c++) assert.ok(Object.is(t[panelIndex(row, c, features)], 0), `${path}: padding column ${c} of row ${row} is 0`);
          }
        }
      }
    }
  }));
}

test('sparsePattern: flat order of a one-block pattern, NaN counts as kept, objects of one backend only', { skip }, () => {
  const m = Float32Array.from([0, 1, 0, 0, 0, 0, 0, 0, 1, 0, NaN, 0]); // 3x4, row 1 empty, col 3 empty
  for (const be of [ref, native!]) {
    const p = be.sparsePattern(m, 3, 4);
    assert.equal(p.nnz, 3);
    assert.deepEqual([...p.flat], [1, 8, 10]);
    assert.throws(() => be.sparsePattern(m, 3, 5), RangeError);
  }
  const f = new Float32Array(64);
  assert.throws(() => native!.sparseForward(ref.sparsePattern(m, 3, 4), f, f, new Float32Array(64), null, 1, 16, false), TypeError);
  assert.throws(() => ref.sparseForward(native!.sparsePattern(m, 3, 4), f, f, new Float32Array(64), null, 1, 16, false), TypeError);
});

test('sparsePattern with reuse: the same pattern as without, at any size; the reused one is refused by every kernel and prepared chain', { skip }, () => {
  const rnd = prng(31);
  const f = new Float32Array(64 * 64);
  let old = native!.sparsePattern(mask(40, 70, 0.1, rnd), 40, 70);
  // Smaller, larger and the same shapes and densities as the pattern whose memory they take.
  for (const [rows, cols, density] of [[40, 70, 0.1], [20, 30, 0.5], [60, 90, 0.3], [60, 90, 0.02], [1, 1, 1]] as const) {
    const m = mask(rows, cols, density, rnd);
    const chain = native!.sparseMlp.prepare([{ pattern: old, vals: new Float32Array(old.nnz), bias: null, relu: false, gvals: new Float32Array(old.nnz), gbias: null }], 1);
    const p = native!.sparsePattern(m, rows, cols, old), want = native!.sparsePattern(m, rows, cols), r = ref.sparsePattern(m, rows, cols, null);
    assert.equal(p.nnz, r.nnz);
    assert.deepEqual(p.flat, want.flat);
    // The kernels read the pattern's packed order: the same results as the fresh pattern.
    const vals = randomArray(p.nnz, rnd), inT = randomArray(cols * 64, rnd), a = new Float32Array(rows * 64), b = new Float32Array(rows * 64);
    native!.sparseForward(p, vals, inT, a, null, 16, 16, false);
    native!.sparseForward(want, vals, inT, b, null, 16, 16, false);
    assert.deepEqual(a, b, `${rows}x${cols}: forward`);
    assert.throws(() => native!.sparseForward(old, f, f, f, null, 1, 16, false), (e: Error) => e instanceof TypeError && /^sparseForward: pattern must be an object made by this backend's sparsePattern\(\)$/.test(e.message));
    assert.throws(() => native!.sparsePattern(m, rows, cols, old), TypeError, 'a pattern cannot be reused twice');
    assert.throws(() => native!.sparseMlp.evaluate(chain, new Float32Array(old.cols), new Int32Array(1)), /layer 0's pattern was given to sparsePattern as `reuse` after the chain was prepared/);
    old = p;
  }
  assert.throws(() => native!.sparsePattern(new Float32Array(4), 2, 2, {} as never), TypeError);
});

test('sparseForward: NaN in an input reaches exactly the rows whose nonzeros read it', { skip }, () => {
  const rnd = prng(5);
  const rows = 5, cols = 8, n = 37, ld = 48;
  const m = mask(rows, cols, 0.5, rnd);
  m[0 * cols + 3] = 1;
  m[1 * cols + 3] = 0;
  const w = randomArray(rows * cols, rnd), x = randomArray(n * cols, rnd);
  x[5 * cols + 3] = NaN; // sample 5, feature 3
  for (const be of [ref, native!]) {
    const p = be.sparsePattern(m, rows, cols);
    const inT = new Float32Array(cols * 64), out = new Float32Array(rows * 64);
    be.toPanels(x, inT, n, cols, ld);
    be.sparseForward(p, Float32Array.from(p.flat, (i) => w[i]), inT, out, null, n, ld, true);
    assert.ok(Number.isNaN(out[panelIndex(0, 5, rows)]), `${be.name}: row 0 reads the NaN`);
    assert.ok(!Number.isNaN(out[panelIndex(1, 5, rows)]), `${be.name}: row 1 does not`);
  }
});

test('toPanels/fromPanels: every block/edge shape, zero padding, accumulate; round trip; every SIMD path', { skip }, () => onEverySimdPath(native!, () => {
  const rnd = prng(17);
  for (const [n, features] of [[1, 1], [3, 5], [8, 8], [9, 17], [60, 784], [64, 300], [70, 33], [1000, 10]]) {
    const ld = Math.max(16, (n + 15) & ~15);
    const size = features * panelColumns(ld);
    const x = randomArray(n * features, rnd);
    const [a, b] = [new Float32Array(size).fill(7), new Float32Array(size).fill(7)];
    ref.toPanels(x, a, n, features, ld);
    native!.toPanels(x, b, n, features, ld);
    assert.deepEqual(b, a, `toPanels ${n}x${features}`);
    for (let i = 0; i < features; i++) for (let c = n; c < panelColumns(ld); c++) assert.equal(b[panelIndex(i, c, features)], 0);
    for (const acc of [false, true]) {
      const init = randomArray(n * features, prng(n + features));
      const [ya, yb] = [init.slice(), init.slice()];
      ref.fromPanels(a, ya, n, features, ld, acc);
      native!.fromPanels(b, yb, n, features, ld, acc);
      assert.deepEqual(yb, ya, `fromPanels ${n}x${features} accumulate ${acc}`);
      if (!acc) assert.deepEqual(yb, x, 'round trip');
    }
  }
}));

test('sparse kernels give bitwise the same results on 1 and 2 threads', { skip }, () => {
  const rnd = prng(23);
  const n = 100, inF = 784, outF = 300, ld = 112;
  const m = mask(outF, inF, 0.3, rnd);
  const w = randomArray(outF * inF, rnd), x = randomArray(n * inF, rnd), b = randomArray(outF, rnd), gy = randomArray(n * outF, rnd);
  const before = native!.getThreads();
  try {
    const run = (threads: number) => {
      native!.setThreads(threads);
      return sparseLayer(native!, x, w, b, gy, m, n, inF, outF, ld, true);
    };
    const one = run(1), two = run(2);
    for (const k of ['y', 'gx', 'gw', 'gb'] as const) assert.deepEqual(two[k], one[k], k);
  } finally {
    native!.setThreads(before);
  }
});

test('sparse kernels validate their arguments', { skip }, () => {
  const nb = native!;
  const p = nb.sparsePattern(Float32Array.from([1, 0, 1, 1]), 2, 2);
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => nb.sparseForward(p, f(2), f(128), f(128), null, 4, 16, false), /vals has 2 elements, needs nnz = 3/);
  assert.throws(() => nb.sparseForward(p, f(3), f(128), f(128), null, 4, 24, false), /ld must be a positive multiple of 16, got 24/);
  assert.throws(() => nb.sparseForward(p, f(3), f(128), f(128), null, 17, 16, false), /n = 17 must be <= ld = 16/);
  assert.throws(() => nb.sparseForward(p, f(3), f(127), f(128), null, 4, 16, false), /inT has 127 elements, needs features\*panelCols\(ld\) = 128/);
  const shared = f(128);
  assert.throws(() => nb.sparseForward(p, f(3), shared, shared, null, 4, 16, false), /share memory/);
  assert.throws(() => nb.sparseWeightGrad(p, f(128), f(128), f(2), null, 16), /gvals has 2 elements/);
  assert.throws(() => nb.sparseWeightGrad(p, f(128), f(128), null, f(1), 16), /gbias has 1 elements, needs rows = 2/);
  assert.throws(() => nb.sparseInputGrad(p, f(3), f(64), f(128), 16), /gyT has 64 elements/);
  assert.throws(() => nb.toPanels(f(16), f(3), 4, 4, 16), /out has 3 elements/);
  assert.throws(() => nb.fromPanels(f(256), f(15), 4, 4, 16, false), /y has 15 elements, needs n\*features = 16/);
  assert.throws(() => nb.sparseForward({} as never, f(3), f(128), f(128), null, 4, 16, false), /pattern must be an object made by this backend/);
  assert.throws(() => nb.sparsePattern(f(4), 2, 3), /mask has 4 elements, expected rows\*cols = 6/);
});

/** The pattern of `m` with `drop` entries of it cleared and `grow` ones set (indices into the flat mask). */
function changed(m: Float32Array, drop: number[], grow: number[]): Float32Array {
  const next = m.slice();
  for (const i of drop) next[i] = 0;
  for (const i of grow) next[i] = 1;
  return next;
}

test('sparsePatternFrom: native = reference, through its merge (same blocks) and its dense path; grown entries in any order; bad indices refused', { skip }, () => {
  const rnd = prng(41);
  // 300 x 784 at 8% has blocks of 64 columns; 40 x 50 at 5% one block of all 50 columns.
  for (const [rows, cols, density] of [[300, 784, 0.08], [40, 50, 0.05], [12, 9, 0.5]]) {
    const m = mask(rows, cols, density, rnd);
    const kept = [...m.keys()].filter((i) => m[i] !== 0), empty = [...m.keys()].filter((i) => m[i] === 0);
    const k = Math.max(1, Math.floor(kept.length / 4));
    const drop = kept.filter((_, j) => j % 4 === 1).slice(0, k), grow = empty.filter((_, j) => j % 5 === 2).slice(0, k);
    // A dropped entry grown back: in both patterns, but new.
    grow.push(drop[0]);
    drop.push(kept[kept.length - 1]);
    const next = changed(m, drop, []);
    for (const i of grow) next[i] = 1;
    const grown = Int32Array.from(grow).sort();
    for (const be of [ref, native!] as Backend[]) {
      const prev = be.sparsePattern(m, rows, cols), p = be.sparsePattern(next, rows, cols);
      const from = new Int32Array(p.nnz).fill(7);
      be.sparsePatternFrom(p, prev.flat, grown, from);
      const where = new Map([...prev.flat].map((f, j) => [f, j]));
      const want = Int32Array.from(p.flat, (f) => (grown.includes(f) ? -1 : where.get(f) ?? -1));
      assert.deepEqual(from, want, `${be.name} ${rows}x${cols}: from the previous pattern`);
      // The same from prevFlat in row-major order (not the packed one), grown reversed, and no grown.
      const rowMajor = Int32Array.from(prev.flat).sort();
      const posOf = new Map([...rowMajor].map((f, j) => [f, j]));
      be.sparsePatternFrom(p, rowMajor, grown.slice().reverse(), from);
      assert.deepEqual(from, Int32Array.from(p.flat, (f) => (grown.includes(f) ? -1 : posOf.get(f) ?? -1)), `${be.name} ${rows}x${cols}: row-major prevFlat`);
      be.sparsePatternFrom(p, prev.flat, null, from);
      assert.deepEqual(from, Int32Array.from(p.flat, (f) => where.get(f) ?? -1), `${be.name} ${rows}x${cols}: no grown`);
      assert.throws(() => be.sparsePatternFrom(p, Int32Array.of(rows * cols), null, from), new RegExp(`prevFlat\\[0\\] = ${rows * cols} is outside`), be.name);
      assert.throws(() => be.sparsePatternFrom(p, prev.flat, Int32Array.of(-1), from), /grown\[0\] = -1 is outside/, be.name);
      assert.throws(() => be.sparsePatternFrom(p, prev.flat, null, new Int32Array(p.nnz - 1)), /from has \d+ elements, needs nnz/, be.name);
    }
  }
});

/** Forward, input-gradient and weight-gradient results of pattern p (every array the kernels read), 64 columns. */
function kernelResults(be: Backend, p: ReturnType<Backend['sparsePattern']>, rows: number, cols: number, seed: number): Float32Array[] {
  const rnd = prng(seed);
  const vals = randomArray(p.nnz, rnd), inT = randomArray(cols * 64, rnd), gyT = randomArray(rows * 64, rnd);
  const y = new Float32Array(rows * 64), gx = new Float32Array(cols * 64), gw = new Float32Array(p.nnz), gb = new Float32Array(rows);
  be.sparseForward(p, vals, inT, y, null, 64, 64, false);
  be.sparseInputGrad(p, vals, gyT, gx, 64);
  be.sparseWeightGrad(p, gyT, inT, gw, gb, 64);
  return [y, gx, gw, gb];
}

test('sparsePatternMoved: the pattern and `from` of sparsePattern + sparsePatternFrom, merged or built; old is released', { skip }, () => {
  const rnd = prng(43);
  for (const [rows, cols, density] of [[300, 784, 0.076], [300, 784, 0.02], [100, 300, 0.22], [40, 50, 0.05], [12, 9, 0.5], [1, 7, 0.5]]) {
    const m = mask(rows, cols, density, rnd);
    const kept = [...m.keys()].filter((i) => m[i] !== 0), empty = [...m.keys()].filter((i) => m[i] === 0);
    const k = Math.max(1, Math.floor(kept.length / 5));
    const drop = kept.filter((_, j) => j % 5 === 3).slice(0, k), grow = empty.filter(() => rnd() < 0.3).slice(0, k);
    drop.push(kept[0]);
    grow.push(kept[kept.length - 1]); // dropped below and grown again: new
    drop.push(kept[kept.length - 1]);
    grow.push(...empty.slice(-1));
    const same = changed(m, drop, grow);
    const sorted = Int32Array.from(new Set(grow)).sort();
    const cases: Array<[string, Float32Array, Int32Array | null]> = [
      ['same count, grown increasing', same, sorted],
      ['grown in any order', same, sorted.slice().reverse()],
      ['no grown', changed(m, drop, []), null],
      ['fewer nonzeros (other blocks)', changed(m, kept.filter((_, j) => j % 2 === 0), []), null],
      ['a nonzero that is neither kept nor grown', changed(same, [], empty.slice(0, 1)), sorted],
      ['a grown entry that is zero', changed(same, [sorted[0]], []), sorted],
    ];
    for (const [what, next, grown] of cases) {
      for (const be of [ref, native!] as Backend[]) {
        const old = be.sparsePattern(m, rows, cols), oldFlat = Int32Array.from(old.flat);
        const want = be.sparsePattern(next, rows, cols), wantFrom = new Int32Array(want.nnz);
        be.sparsePatternFrom(want, oldFlat, grown, wantFrom);
        const { pattern, from } = be.sparsePatternMoved(old, next, grown);
        const at = `${be.name} ${rows}x${cols} at ${density}, ${what}`;
        assert.equal(pattern.nnz, want.nnz, at);
        assert.deepEqual(pattern.flat, want.flat, at);
        assert.deepEqual(from, wantFrom, at);
        assert.deepEqual(kernelResults(be, pattern, rows, cols, 5), kernelResults(be, want, rows, cols, 5), `${at}: kernels`);
        if (be === native) assert.throws(() => be.sparseForward(old, new Float32Array(old.nnz), new Float32Array(cols * 64), new Float32Array(rows * 64), null, 1, 16, false), TypeError, at);
      }
    }
  }
  const nb = native!, old = nb.sparsePattern(Float32Array.of(1, 0, 0, 1), 2, 2);
  assert.throws(() => nb.sparsePatternMoved(old, new Float32Array(3), null), /sparsePatternMoved: mask has 3 elements, expected rows\*cols = 4/);
  assert.throws(() => nb.sparsePatternMoved(old, new Float32Array(4), Int32Array.of(4)), /grown\[0\] = 4 is outside \[0, 4\)/);
  // grown is an Int32Array, or undefined or null for none.
  assert.throws(() => nb.sparsePatternMoved(old, new Float32Array(4), Float32Array.of(1) as unknown as Int32Array), /sparsePatternMoved: grown must be an Int32Array, got Float32Array/);
  assert.throws(() => nb.sparsePatternMoved(ref.sparsePattern(new Float32Array(4), 2, 2), new Float32Array(4), null), TypeError);
});

test('sparsePatternChanged: sparsePatternMoved of the changed mask, merged or built, on 1, 2 and 3 threads; packed arrays moved in place; bad lists refused', { skip }, () => {
  const rnd = prng(47);
  const before = native!.getThreads();
  for (const threads of [1, 2, 3]) {
    native!.setThreads(threads);
    for (const [rows, cols, density] of [[300, 784, 0.076], [100, 300, 0.22], [40, 50, 0.05], [12, 9, 0.5], [1, 7, 0.5]]) {
      const m = mask(rows, cols, density, rnd);
      const kept = [...m.keys()].filter((i) => m[i] !== 0), empty = [...m.keys()].filter((i) => m[i] === 0);
      const k = Math.max(1, Math.floor(kept.length / 5));
      const drop = kept.filter((_, j) => j % 5 === 3).slice(0, k);
      drop.push(kept[kept.length - 1]);
      const grow = empty.filter(() => rnd() < 0.3).slice(0, drop.length - 1);
      grow.push(kept[kept.length - 1]); // dropped and grown again: new
      const shuffled = (a: number[]) => Int32Array.from(a).sort().reverse();
      const cases: Array<[string, number[], number[] | null]> = [
        ['same count', drop, grow],
        ['no grown (other blocks)', drop, null],
        ['more grown (other blocks)', drop.slice(0, 1), grow.slice(0, -1)],
        ['half the nonzeros dropped (other blocks)', kept.filter((_, j) => j % 2 === 0), []],
      ];
      for (const [what, d, g] of cases) {
        const next = changed(m, d, g ?? []);
        for (const be of [ref, native!] as Backend[]) {
          const at = `${be.name} ${threads} threads ${rows}x${cols} at ${density}, ${what}`;
          const want = be.sparsePatternMoved(be.sparsePattern(m, rows, cols), next, g ? Int32Array.from(g) : null);
          const old = be.sparsePattern(m, rows, cols);
          const same = (g?.length ?? 0) === d.length;
          const packed = same ? [0, 1].map(() => Float32Array.from({ length: old.nnz }, (_, j) => j + 1)) : [];
          const { pattern, from } = be.sparsePatternChanged(old, shuffled(d), g ? shuffled(g) : null, ...packed);
          assert.deepEqual(pattern.flat, want.pattern.flat, at);
          assert.deepEqual(from, want.from, at);
          for (const a of packed) assert.deepEqual(a, Float32Array.from(from, (j) => (j >= 0 ? j + 1 : 0)), `${at}: packed`);
          assert.deepEqual(kernelResults(be, pattern, rows, cols, 5), kernelResults(be, want.pattern, rows, cols, 5), `${at}: kernels`);
        }
      }
    }
  }
  native!.setThreads(before);
  for (const be of [ref, native!] as Backend[]) {
    const p = () => be.sparsePattern(Float32Array.of(1, 0, 0, 1), 2, 2);
    assert.throws(() => be.sparsePatternChanged(p(), Int32Array.of(1), null), /sparsePatternChanged: dropped must be distinct nonzeros of old/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), Int32Array.of(0, 0), null), /dropped must be distinct nonzeros of old/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), null, Int32Array.of(3)), /grown\[0\] = 3 is already a nonzero/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), null, Int32Array.of(1, 1)), /grown\[1\] = 1 is already a nonzero/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), Int32Array.of(4), null), /dropped\[0\] = 4 is outside \[0, 4\)/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), null, Int32Array.of(-1)), /grown\[0\] = -1 is outside/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), Int32Array.of(0), null, new Float32Array(2)), /move in place only at the same count: 1 dropped, 0 grown/, be.name);
    assert.throws(() => be.sparsePatternChanged(p(), null, null, new Float32Array(3)), /packed array 0 has 3 elements, old has nnz = 2/, be.name);
  }
});
