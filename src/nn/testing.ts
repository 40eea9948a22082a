/**
 * The integer-hash formula the golden fixtures' generators (fixtures/gen_*_golden.py, the hash
 * in fixtures/golden_io.py) draw weights, inputs and token ids from, so that lth computes the
 * same values bit for bit instead of reading them from the fixture; and the norm-based error
 * the golden tests use, and their second run on the reference backend.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../backend/index.js';

/** lowbias32: an integer hash, the same as the generators'. */
export function lowbias32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** u(k, i) = h(h(i) ^ (k·0x9E3779B9 mod 2³²)). */
function hash(k: number, i: number): number {
  return lowbias32(lowbias32(i) ^ (Math.imul(k, 0x9e3779b9) >>> 0));
}

/** value(k, i) = float32(offset + ((2·(u + 0.5)/2³² - 1)·√3)·std): uniform with deviation std around offset. */
export function formulaTensor(k: number, size: number, std: number, offset = 0): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = offset + ((2 * (hash(k, i) + 0.5) / 4294967296 - 1) * Math.sqrt(3)) * std;
  return out;
}

/** id(k, i) = u(k, i) mod vocabulary. */
export function formulaIds(k: number, size: number, vocabulary: number): Int32Array {
  return Int32Array.from({ length: size }, (_, i) => hash(k, i) % vocabulary);
}

/** ‖a - b‖₂ / max(‖b‖₂, floor) in float64. */
export function normErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-300): number {
  if (a.length !== b.length) throw new Error(`normErr: lengths ${a.length} and ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor);
}

/** A fixture's formula tensor: its hash key, shape and distribution. */
export interface FormulaSpec {
  name: string;
  shape: number[];
  k: number;
  std: number;
  offset?: number;
}

/**
 * The formula's tensors of a fixture, each checked against the generator's checksum (so a
 * drift of the formula fails here, not as a mismatch of the model's outputs).
 */
export function formulaValues(tensors: FormulaSpec[], checksums: Record<string, number>): Map<string, Float32Array> {
  return new Map(tensors.map((d) => {
    const v = formulaTensor(d.k, d.shape.reduce((a, b) => a * b, 1), d.std, d.offset);
    let sum = 0, abs = 0;
    for (const x of v) {
      sum += x;
      abs += Math.abs(x);
    }
    assert.ok(Math.abs(sum - checksums[d.name]) <= 1e-9 * abs, `${d.name}: the formula gives other values than the generator's`);
    return [d.name, v] as const;
  }));
}

/**
 * Runs a golden test file again in a child process on the reference backend, so that both
 * backends answer to the same fixture; skipped unless this process runs on the native addon
 * (the child itself runs on the reference backend). The child's error lines come back as
 * diagnostics.
 */
export function rerunOnReference(t: TestContext, fileUrl: string, opts: { env?: Record<string, string>; timeoutMs?: number } = {}): void {
  if (getBackend().name !== 'native') {
    t.skip(`this process already runs on the ${getBackend().name} backend`);
    return;
  }
  // Without NODE_TEST_CONTEXT the child reports in plain TAP instead of to a parent runner.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const child = spawnSync(process.execPath, [fileURLToPath(fileUrl)], {
    env: { ...env, LTH_BACKEND: 'reference', ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 300_000,
  });
  const out = `${child.stdout ?? ''}${child.stderr ?? ''}`;
  for (const line of out.split('\n')) if (line.includes('rel err')) t.diagnostic(`reference: ${line.replace(/^[#\s]+/, '')}`);
  assert.equal(child.status, 0, `the golden test failed on the reference backend:\n${out}`);
}
