/**
 * Helpers shared by the backend tests (native vs reference): a seeded PRNG, random arrays,
 * and a child node process for the settings fixed at load (LTH_SIMD, LTH_THREADS).
 */
import { execFile } from 'node:child_process';
import type { SimdPath } from './native.js';

/** mulberry32: a tiny seeded PRNG (the tests must not depend on Math.random). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform values in [lo, hi). */
export function randomArray(n: number, rnd: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rnd();
  return a;
}

/**
 * Calls fn with each SIMD path this CPU has selected in turn (AVX-512, AVX2, the baseline:
 * each is its own compiled copy of the kernels, with its own vector width), then restores
 * the path that was in use.
 */
export function onEverySimdPath(addon: { simdPath(): SimdPath; setSimd(path: SimdPath): SimdPath }, fn: (path: SimdPath) => void): void {
  const start = addon.simdPath();
  try {
    for (const p of ['avx512', 'avx2', 'scalar'] as const) if (addon.setSimd(p) === p) fn(p);
  } finally {
    addon.setSimd(start);
  }
}

/** Runs `code` (an ES module) in a fresh node with `env` added; resolves to its last stdout line as JSON. */
export function child(env: Record<string, string>, code: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], {
      env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000,
    }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`child ${JSON.stringify(env)} failed: ${error.message}\n${stderr}`));
        return;
      }
      const lines = stdout.trim().split('\n');
      try {
        resolve(JSON.parse(lines[lines.length - 1]) as Record<string, unknown>);
      } catch (e) {
        reject(new Error(`child ${JSON.stringify(env)} printed ${JSON.stringify(stdout)}: ${String(e)}`));
      }
    });
  });
}

/**
 * The start of a child program (for `child`) that loads this package's backend index from
 * `indexUrl` as R (reference) and N (native, with the run context resolved from the child's
 * LTH_* variables), or prints {error} and exits.
 */
export function nativeChildPrelude(indexUrl: string): string {
  return `
const { referenceBackend: R, loadNative, resolveContext } = await import(${JSON.stringify(indexUrl)});
let N;
try {
  resolveContext();  // applies LTH_SIMD and LTH_THREADS
  N = loadNative();
} catch (e) { console.log(JSON.stringify({ error: e.message })); process.exit(0); }
if (N instanceof Error) { console.log(JSON.stringify({ error: N.message })); process.exit(0); }
`;
}
