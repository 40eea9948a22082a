import { check } from './errors.js';

/** splitmix32 step: a good 32-bit mixer for seeding. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

function hashString(s: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The position of a random stream (Rng.state()): plain JSON. */
export interface RngState {
  /** xoshiro128**'s four words, unsigned. */
  readonly s: readonly number[];
  /** The second normal of the last Box–Muller pair, not yet drawn. */
  readonly spareNormal: number | null;
}

/**
 * Seeded random numbers (xoshiro128**). Each purpose draws from its own named
 * stream derived from (seed, name, ...indices), so that e.g. changing the data order
 * never changes the initialisation. `Math.random` is never used.
 */
export class Rng {
  private s0: number; private s1: number; private s2: number; private s3: number;
  private spareNormal: number | null = null;

  constructor(seed: number, stream: string, ...indices: number[]) {
    check(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff,
      `seed must be an integer in [0, 4294967295], got ${seed}`);
    let h = mix32(seed ^ hashString(stream));
    for (const i of indices) h = mix32(h ^ mix32(i >>> 0));
    this.s0 = mix32(h);
    this.s1 = mix32(this.s0 ^ 0x6a09e667);
    this.s2 = mix32(this.s1 ^ 0xbb67ae85);
    this.s3 = mix32(this.s2 ^ 0x3c6ef372) | 1; // never all zero
  }

  /** The stream's position: what a checkpoint keeps to go on drawing the same numbers (restore()). */
  state(): RngState {
    return { s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spareNormal: this.spareNormal };
  }

  /** Moves the stream to a position state() gave. */
  restore(state: RngState): void {
    const { s, spareNormal } = state;
    check(Array.isArray(s) && s.length === 4 && s.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff) && s.some((x) => x !== 0),
      `random stream state: expected 4 unsigned 32-bit words, not all zero, got ${JSON.stringify(s)}`);
    check(spareNormal === null || typeof spareNormal === 'number', `random stream state: spareNormal must be a number or null, got ${JSON.stringify(spareNormal)}`);
    [this.s0, this.s1, this.s2, this.s3] = s.map((x) => x | 0);
    this.spareNormal = spareNormal;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5, lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased. */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spareNormal !== null) {
      const s = this.spareNormal;
      this.spareNormal = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]; p[i] = p[j]; p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
