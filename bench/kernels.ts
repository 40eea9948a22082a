/**
 * Kernel benchmark: GFLOP/s of the LeNet-300-100 GEMM shapes (batch 60 training,
 * batch 1000 evaluation) on the native backend with 1 and 2 threads, against the
 * reference backend for the small ones, and the time of one Adam step over the
 * 266,200 parameters of LeNet-300-100.
 *
 *   node dist/bench/kernels.js [--json] [--quick]
 *
 * Every figure is the median of several timed runs; each run repeats the kernel
 * until it has taken a few milliseconds. With --json the last stdout line is one
 * JSON object with all the numbers.
 */
import { performance } from 'node:perf_hooks';
import { loadNative, referenceBackend, type Backend } from '../src/backend/index.js';
import { median } from './stats.js';

interface Shape {
  name: string;
  m: number; k: number; n: number;
  transA: boolean; transB: boolean;
}

const SHAPES: Shape[] = [
  { name: 'fwd1  X[60x784]·W1ᵀ', m: 60, k: 784, n: 300, transA: false, transB: true },
  { name: 'fwd2  X[60x300]·W2ᵀ', m: 60, k: 300, n: 100, transA: false, transB: true },
  { name: 'fwd3  X[60x100]·W3ᵀ', m: 60, k: 100, n: 10, transA: false, transB: true },
  { name: 'gW1   gYᵀ[300x60]·X', m: 300, k: 60, n: 784, transA: true, transB: false },
  { name: 'gW2   gYᵀ[100x60]·X', m: 100, k: 60, n: 300, transA: true, transB: false },
  { name: 'gW3   gYᵀ[10x60]·X', m: 10, k: 60, n: 100, transA: true, transB: false },
  { name: 'gX2   gY[60x100]·W2', m: 60, k: 100, n: 300, transA: false, transB: false },
  { name: 'gX3   gY[60x10]·W3', m: 60, k: 10, n: 100, transA: false, transB: false },
  { name: 'eval1 X[1000x784]·W1ᵀ', m: 1000, k: 784, n: 300, transA: false, transB: true },
  { name: 'eval2 X[1000x300]·W2ᵀ', m: 1000, k: 300, n: 100, transA: false, transB: true },
  { name: 'eval3 X[1000x100]·W3ᵀ', m: 1000, k: 100, n: 10, transA: false, transB: true },
];

const args = process.argv.slice(2);
const asJson = args.includes('--json');
const quick = args.includes('--quick');
const RUNS = quick ? 3 : 9;
const RUN_MS = quick ? 5 : 20;
const REF_MAX_FLOP = 30e6;

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/** Median seconds per call of `fn`. */
function timeIt(fn: () => void, runs = RUNS, runMs = RUN_MS): number {
  fn();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) fn();
    const dt = performance.now() - t0;
    if (dt >= runMs / 4 || reps >= 1 << 20) {
      reps = Math.max(1, Math.ceil((reps * runMs) / Math.max(dt, 1e-3)));
      break;
    }
    reps *= 4;
  }
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) fn();
    samples.push((performance.now() - t0) / 1000 / reps);
  }
  return median(samples);
}

function gemmGflops(b: Backend, s: Shape, runs?: number, runMs?: number): number {
  const a = random(s.m * s.k, 1), bb = random(s.k * s.n, 2), c = new Float32Array(s.m * s.n);
  const sec = timeIt(() => b.matmul(a, bb, c, s.m, s.k, s.n, s.transA, s.transB, false), runs, runMs);
  return (2 * s.m * s.k * s.n) / sec / 1e9;
}

const native = loadNative();
if (native instanceof Error) {
  console.error(`native addon unavailable: ${native.message}`);
  process.exit(1);
}
const defaultThreads = native.getThreads();

const rows: { shape: string; m: number; k: number; n: number; native1: number; native2: number; reference: number | null }[] = [];
for (const s of SHAPES) {
  native.setThreads(1);
  const n1 = gemmGflops(native, s);
  native.setThreads(2);
  const n2 = gemmGflops(native, s);
  const flop = 2 * s.m * s.k * s.n;
  const ref = flop <= REF_MAX_FLOP ? gemmGflops(referenceBackend, s, 3, 1) : null;
  rows.push({ shape: s.name, m: s.m, k: s.k, n: s.n, native1: n1, native2: n2, reference: ref });
}
native.setThreads(defaultThreads);

// Adam over LeNet-300-100's parameters: 784*300+300 + 300*100+100 + 100*10+10.
const P = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10;
const param = random(P, 3), grad = random(P, 4), mom = new Float32Array(P), vel = new Float32Array(P);
const mask = new Float32Array(P);
for (let i = 0; i < P; i++) mask[i] = i % 5 === 0 ? 0 : 1;
let step = 1;
const adamTimes = (m: Float32Array | null, threads: number) => {
  native.setThreads(threads);
  return timeIt(() => native.adam(param, grad, mom, vel, m, P, 1.2e-3, 0.9, 0.999, 1e-8, step++)) * 1e3;
};
const adam = {
  params: P,
  native1Ms: adamTimes(null, 1),
  native2Ms: adamTimes(null, 2),
  nativeMask1Ms: adamTimes(mask, 1),
  nativeMask2Ms: adamTimes(mask, 2),
  referenceMaskMs: timeIt(() => referenceBackend.adam(param, grad, mom, vel, mask, P, 1.2e-3, 0.9, 0.999, 1e-8, step++), 3, 5) * 1e3,
};
native.setThreads(defaultThreads);

const fmt = (x: number | null, w = 9) => (x === null ? '-' : x.toFixed(1)).padStart(w);
console.log(`native backend: simd=${native.simdPath()}, default threads=${defaultThreads}`);
console.log(`${'shape'.padEnd(24)}${'m'.padStart(6)}${'k'.padStart(6)}${'n'.padStart(6)}   GFLOP/s: ${'native×1'.padStart(9)}${'native×2'.padStart(9)}${'reference'.padStart(10)}`);
for (const r of rows) {
  console.log(`${r.shape.padEnd(24)}${String(r.m).padStart(6)}${String(r.k).padStart(6)}${String(r.n).padStart(6)}            ${fmt(r.native1)}${fmt(r.native2)}${fmt(r.reference, 10)}`);
}
console.log(`adam, ${P} params (ms): native×1 ${adam.native1Ms.toFixed(3)}, native×2 ${adam.native2Ms.toFixed(3)}, ` +
  `with mask native×1 ${adam.nativeMask1Ms.toFixed(3)}, native×2 ${adam.nativeMask2Ms.toFixed(3)}, reference ${adam.referenceMaskMs.toFixed(2)}`);

if (asJson) {
  console.log(JSON.stringify({
    simd: native.simdPath(),
    defaultThreads,
    gemm: rows,
    adam,
  }));
}
