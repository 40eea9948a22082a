/**
 * The integer-hash formula the golden fixtures' generators (fixtures/gen_*_golden.py, the hash
 * in fixtures/golden_io.py) draw weights, inputs and token ids from, so that lth computes the
 * same values bit for bit instead of reading them from the fixture; and the norm-based error
 * the golden tests use.
 */

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
