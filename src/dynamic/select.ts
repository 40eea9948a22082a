/**
 * Selection without sorting: a drop/regrow update of dynamic sparse training picks the k
 * smallest magnitudes among a layer's active weights and the k largest gradients among
 * its inactive ones, every ΔT iterations, on layers of 10^5-10^7 entries. Sorting those
 * (what pruning does once a level) would cost more than the 100 steps between updates at
 * low density; quickselect finds the threshold in linear time.
 */

/** The k-th smallest (0-based) of the first n entries of `a`, which it reorders. */
export function selectKth(a: Float32Array, n: number, k: number): number {
  let lo = 0, hi = n - 1;
  while (hi > lo) {
    // Median of three as the pivot: sorted or constant runs stay linear on average.
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/**
 * The indices of the `count` smallest keys among the entries where `mask` equals `among`
 * (1: the active entries; 0: the inactive ones), in increasing index order; ties at the
 * threshold go to the lowest indices, so the choice is deterministic. `scratch` holds at
 * least as many entries as are eligible.
 */
export function lowestAmong(keys: Float32Array, mask: Float32Array, among: 0 | 1, count: number, scratch: Float32Array): Int32Array {
  let n = 0;
  for (let i = 0; i < keys.length; i++) if ((mask[i] !== 0 ? 1 : 0) === among) scratch[n++] = keys[i];
  if (count > n) throw new Error(`select: asked for ${count} of ${n} eligible entries`);
  const out = new Int32Array(count);
  if (count === 0) return out;
  const threshold = selectKth(scratch, n, count - 1);
  let below = 0;
  for (let i = 0; i < keys.length; i++) if ((mask[i] !== 0 ? 1 : 0) === among && keys[i] < threshold) below++;
  let ties = count - below, r = 0;
  for (let i = 0; i < keys.length && r < count; i++) {
    if ((mask[i] !== 0 ? 1 : 0) !== among) continue;
    const v = keys[i];
    if (v < threshold) out[r++] = i;
    else if (v === threshold && ties > 0) {
      out[r++] = i;
      ties--;
    }
  }
  return out;
}
