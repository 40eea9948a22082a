// The sequence kernels' loops (native/seq.cc): the LSTM cell and its gradient, the row
// softmax and its gradient. Included once per ISA inside its own namespace with
// LTH_SEQ_TARGET set to that ISA's target attribute (AVX-512 or AVX2 without FMA, or the
// baseline) and LTH_SEQ_LANES to the attention products' vector width (16 for AVX-512, else
// 8). No standard headers here (see native/README.md).
//
// The arithmetic is the same on every ISA, and the AVX2 copy is compiled without FMA (no
// multiply-add contraction), so the results are bitwise the same; wider registers halve the
// instructions of these elementwise loops. The LSTM cell is plain loops over contiguous
// floats, which the compiler vectorises; the softmax works in eight float lanes (GCC
// vector extensions) with its sums in double lanes added in a fixed order: a row is not one
// chain of dependent double adds, which took most of a text_transformer's attention on
// the baseline ISA.

#define LTH_VEC8_TARGET LTH_SEQ_TARGET
#include "vec8.h"
#undef LTH_VEC8_TARGET

// The attention products' vector: LTH_SEQ_LANES floats.
constexpr int kLanes = LTH_SEQ_LANES;
typedef float vw __attribute__((vector_size(4 * LTH_SEQ_LANES)));

LTH_SEQ_TARGET static inline vw loadw(const float* p) {
  vw v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

LTH_SEQ_TARGET static inline void storew(float* p, vw v) { __builtin_memcpy(p, &v, sizeof v); }

// A value of type V (a float, or lanes of one) from a float. a - 0 is a for every a, -0
// included, so it compiles to a broadcast alone; V{} + a turns -0 into +0 and costs an
// addition per call.
template <class V>
LTH_SEQ_TARGET static inline V splat(float a) {
  return a - V{};
}

LTH_SEQ_TARGET static inline int32_t to_int32(float a) { return (int32_t)a; }
LTH_SEQ_TARGET static inline v8i to_int32(v8f a) { return __builtin_convertvector(a, v8i); }

// e^x to about 2 ulp for x in [-87, 88] (clamped outside; NaN stays NaN, through r), for a
// float or 8 lanes: Cephes' expf, x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7
// polynomial, 2^n put in the exponent bits; n rounded by adding and subtracting 1.5·2^23,
// so there is no branch.
template <class V>
LTH_SEQ_TARGET static inline V exp_approx(V x) {
  const V lo = splat<V>(-87.0f), hi = splat<V>(88.0f);
  V c = x < lo ? lo : x;  // NaN stays NaN
  c = c > hi ? hi : c;
  const V fn = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const V r = (c - fn * 0.693359375f) + fn * 2.12194440e-4f;
  V p = splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const auto bits = (to_int32(fn) + 127) << 23;
  V scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

LTH_SEQ_TARGET static inline float sigmoid(float v) { return 1.0f / (1.0f + exp_approx(-v)); }

// tanh(v) = 1 - 2 / (e^{2v} + 1): saturates to ±1, absolute error about 1e-7 near 0.
LTH_SEQ_TARGET static inline float tanh_approx(float v) { return 1.0f - 2.0f / (exp_approx(2.0f * v) + 1.0f); }

// Rows [b0, b1) of lstmCell: the gates' activations in place, then c and h.
LTH_SEQ_TARGET static void lstm_cell(float* gates, const float* __restrict cPrev, float* __restrict c,
                                     float* __restrict h, int64_t b0, int64_t b1, int64_t H) {
  for (int64_t b = b0; b < b1; b++) {
    float* __restrict g = gates + b * 4 * H;
    for (int64_t j = 0; j < 2 * H; j++) g[j] = sigmoid(g[j]);
    for (int64_t j = 2 * H; j < 3 * H; j++) g[j] = tanh_approx(g[j]);
    for (int64_t j = 3 * H; j < 4 * H; j++) g[j] = sigmoid(g[j]);
    const int64_t o = b * H;
    for (int64_t j = 0; j < H; j++) c[o + j] = g[H + j] * cPrev[o + j] + g[j] * g[2 * H + j];
    for (int64_t j = 0; j < H; j++) h[o + j] = g[3 * H + j] * tanh_approx(c[o + j]);
  }
}

// Rows [b0, b1) of lstmCellBackward. gradC and gradCPrev may be one array (each entry read
// before it is written): not restrict.
LTH_SEQ_TARGET static void lstm_cell_backward(const float* __restrict gates, const float* __restrict cPrev,
                                              const float* __restrict c, const float* __restrict gradH,
                                              const float* gradC, float* __restrict gradGates, float* gradCPrev,
                                              int64_t b0, int64_t b1, int64_t H) {
  for (int64_t b = b0; b < b1; b++) {
    const float* __restrict g = gates + b * 4 * H;
    float* __restrict dg = gradGates + b * 4 * H;
    const int64_t o = b * H;
    float* dc = gradCPrev + o;
    // First the cell state's gradient (into gradCPrev, entry by entry over gradC), then the gates'.
    for (int64_t j = 0; j < H; j++) {
      const float og = g[3 * H + j], tc = tanh_approx(c[o + j]), gh = gradH[o + j];
      dg[3 * H + j] = gh * tc * og * (1 - og);
      dc[j] = gradC[o + j] + gh * og * (1 - tc * tc);
    }
    // One output per loop: with four interleaved stores the compiler leaves it scalar.
    for (int64_t j = 0; j < H; j++) dg[j] = dc[j] * g[2 * H + j] * g[j] * (1 - g[j]);
    for (int64_t j = 0; j < H; j++) dg[H + j] = dc[j] * cPrev[o + j] * g[H + j] * (1 - g[H + j]);
    for (int64_t j = 0; j < H; j++) dg[2 * H + j] = dc[j] * g[j] * (1 - g[2 * H + j] * g[2 * H + j]);
    for (int64_t j = 0; j < H; j++) dc[j] *= g[H + j];
  }
}

// The first n < 8 entries of p in a vector, the others `fill`.
LTH_SEQ_TARGET static inline v8f load_part(const float* p, int64_t n, float fill) {
  v8f v = splat<v8f>(fill);
  for (int64_t l = 0; l < n; l++) v[l] = p[l];
  return v;
}

// The softmax of the first `seen` entries of row x into y (y may be x), zeros after them. A
// NaN among them makes the whole row NaN (Math.max's rule for the maximum).
LTH_SEQ_TARGET static void softmax_row(const float* x, float* y, int64_t cols, int64_t seen) {
  const int64_t full = seen & ~(int64_t)7, rest = seen - full;
  // The last partial vector: read and written whole where the row holds it (a causal row's
  // entries past `seen`, zero in y anyway), its lanes past the row selected away; element by
  // element only at the row's end. The same values either way.
  const bool whole = rest && full + 8 <= cols;
  const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
  const v8i inRow = lane < (int32_t)rest;
  const auto tail = [&](const float* p, float fill) {
    return whole ? (inRow ? load8(p + full) : splat<v8f>(fill)) : load_part(p + full, rest, fill);
  };
  v8f m = splat<v8f>(-__builtin_inff());
  v8i nan = {};
  for (int64_t j = 0; j < full; j += 8) {
    const v8f v = load8(x + j);
    m = v > m ? v : m;
    nan |= v != v;
  }
  if (rest) {
    const v8f v = tail(x, -__builtin_inff());
    m = v > m ? v : m;
    nan |= v != v;
  }
  float mx = m[0];
  bool anyNan = nan[0] != 0;
  for (int l = 1; l < 8; l++) {
    mx = m[l] > mx ? m[l] : mx;
    anyNan = anyNan || nan[l] != 0;
  }
  if (anyNan) mx = __builtin_nanf("");
  const v8f mv = splat<v8f>(mx);
  v4d s0 = {}, s1 = {};
  for (int64_t j = 0; j < full; j += 8) {
    const v8f e = exp_approx(load8(x + j) - mv);
    store8(y + j, e);
    s0 += low4(e);
    s1 += high4(e);
  }
  if (rest) {
    // The lanes past the row hold e^(0 - max): zeroed before the sum.
    v8f e = exp_approx(tail(x, 0.0f) - mv);
    e = inRow ? e : splat<v8f>(0.0f);
    if (whole)
      store8(y + full, e);
    else
      for (int64_t l = 0; l < rest; l++) y[full + l] = e[l];
    s0 += low4(e);
    s1 += high4(e);
  }
  const float inv = (float)(1.0 / pair_sum(s0, s1));
  const v8f iv = splat<v8f>(inv);
  for (int64_t j = 0; j < full; j += 8) store8(y + j, load8(y + j) * iv);
  int64_t zero = seen;
  if (whole) {
    const v8f t = load8(y + full) * iv;
    store8(y + full, inRow ? t : splat<v8f>(0.0f));
    zero = full + 8;
  } else {
    for (int64_t j = full; j < seen; j++) y[j] *= inv;
  }
  for (int64_t j = zero; j < cols; j++) y[j] = 0;
}

// gi = y ⊙ (go - Σ go⊙y) for one row (gi may be go); the dot product in double lanes.
LTH_SEQ_TARGET static void softmax_row_backward(const float* y, const float* go, float* gi, int64_t cols) {
  const int64_t full = cols & ~(int64_t)7, rest = cols - full;
  v4d d0 = {}, d1 = {};
  for (int64_t j = 0; j < full; j += 8) {
    const v8f a = load8(go + j), b = load8(y + j);
    d0 += low4(a) * low4(b);
    d1 += high4(a) * high4(b);
  }
  if (rest) {
    const v8f a = load_part(go + full, rest, 0.0f), b = load_part(y + full, rest, 0.0f);
    d0 += low4(a) * low4(b);
    d1 += high4(a) * high4(b);
  }
  const float d = (float)pair_sum(d0, d1);
  const v8f dv = splat<v8f>(d);
  for (int64_t j = 0; j < full; j += 8) store8(gi + j, load8(y + j) * (load8(go + j) - dv));
  for (int64_t j = full; j < cols; j++) gi[j] = y[j] * (go[j] - d);
}

// Causal attention's products for one (sample, head) block of T positions by dh features
// (seq.cc's attention_block and attention_block_backward), over the causal half only: row
// t of a score matrix holds columns j <= t, and only those are computed and read. Each
// value is a sum in position order, term by term (a product rounded, then added), the same
// in the vector lanes and the scalar tails, so every ISA gives the same bits whatever its
// vector width (kLanes).

// Row t of causal_dots over columns [j, lim) in groups of kLanes lanes, rows t and t + 1 at once
// where `two` (lim covers row t + 1's columns; row t's past t are left to the caller).
LTH_SEQ_TARGET static inline int64_t causal_dots_groups(const float* __restrict a, const float* __restrict bt,
                                                         float* __restrict s, int64_t T, int64_t dh, int64_t t,
                                                         bool two, int64_t j, int64_t lim) {
  const float* a0 = a + t * dh;
  const float* a1 = two ? a0 + dh : a0;
  float* s0 = s + t * T;
  float* s1 = s0 + T;
  for (; j + 4 * kLanes <= lim; j += 4 * kLanes) {
    vw c[2][4] = {};
    for (int64_t i = 0; i < dh; i++) {
      const vw x0 = splat<vw>(a0[i]), x1 = splat<vw>(a1[i]);
      const float* b = bt + i * T + j;
      for (int g = 0; g < 4; g++) {
        const vw bv = loadw(b + kLanes * g);
        c[0][g] = c[0][g] + x0 * bv;
        c[1][g] = c[1][g] + x1 * bv;
      }
    }
    for (int g = 0; g < 4; g++) {
      storew(s0 + j + kLanes * g, c[0][g]);
      if (two) storew(s1 + j + kLanes * g, c[1][g]);
    }
  }
  for (; j + kLanes <= lim; j += kLanes) {
    vw c0 = {}, c1 = {};
    for (int64_t i = 0; i < dh; i++) {
      const vw bv = loadw(bt + i * T + j);
      c0 = c0 + splat<vw>(a0[i]) * bv;
      c1 = c1 + splat<vw>(a1[i]) * bv;
    }
    storew(s0 + j, c0);
    if (two) storew(s1 + j, c1);
  }
  return j;
}

// s[t*T + j] = Σ_i a[t*dh + i]·bt[i*T + j] for j <= t: the scores Q·Kᵀ (bt = Kᵀ) or dO·Vᵀ
// (bt = Vᵀ). Rows two at a time, sharing bt's loads; columns in groups of kLanes lanes, four
// groups at a time for independent sums. A group that starts at or before a row's last
// column is computed whole where it lies within the row (its columns past that are left to
// the caller, which never reads them); the columns past the last whole group one by one.
LTH_SEQ_TARGET static void causal_dots(const float* __restrict a, const float* __restrict bt, float* __restrict s,
                                       int64_t T, int64_t dh) {
  for (int64_t t = 0; t < T; t += 2) {
    const bool two = t + 1 < T;
    const int64_t last = two ? t + 1 : t;  // the pair's last row
    const int64_t up = (last + kLanes) & ~(int64_t)(kLanes - 1), lim = up < T ? up : T;
    const int64_t j = causal_dots_groups(a, bt, s, T, dh, t, two, 0, lim);
    for (int64_t r = t; r <= last; r++)
      for (int64_t jj = j; jj <= r; jj++) {
        float c = 0.0f;
        for (int64_t i = 0; i < dh; i++) c = c + a[r * dh + i] * bt[i * T + jj];
        s[r * T + jj] = c;
      }
  }
}

// Rows [r0, r0 + rows) (rows <= R) of a causal product over
// features [f, f + kLanes·G), G groups of kLanes lanes: out[r] = Σ_u w(r, u)·x[u], the terms in u
// order. With Rows, w(r, u) = m[r*T + u] for u <= r (P·V, dS·K); otherwise w(r, u) =
// m[u*T + r] for u >= r (Pᵀ·dO, dSᵀ·Q). The rows share x's loads where their ranges meet.
template <int G, int R, bool Rows>
LTH_SEQ_TARGET static inline void causal_block(const float* __restrict m, const float* __restrict x, float* __restrict out,
                                               int64_t T, int64_t dh, int64_t r0, int rows, int64_t f) {
  vw c[R][G] = {};
  const auto w = [&](int64_t r, int64_t u) { return Rows ? m[r * T + u] : m[u * T + r]; };
  const auto add = [&](int k, int64_t u) {
    const vw ws = splat<vw>(w(r0 + k, u));
    for (int g = 0; g < G; g++) c[k][g] = c[k][g] + ws * loadw(x + u * dh + f + kLanes * g);
  };
  if (Rows) {
    // Every row to r0, then the later rows' last terms, in u order.
    for (int64_t u = 0; u <= r0; u++) {
      vw xv[G];
      for (int g = 0; g < G; g++) xv[g] = loadw(x + u * dh + f + kLanes * g);
      for (int k = 0; k < rows; k++) {
        const vw ws = splat<vw>(w(r0 + k, u));
        for (int g = 0; g < G; g++) c[k][g] = c[k][g] + ws * xv[g];
      }
    }
    for (int64_t u = r0 + 1; u < r0 + rows; u++)
      for (int k = (int)(u - r0); k < rows; k++) add(k, u);
  } else {
    // The earlier rows' first terms, then every row from the last one's first u on.
    const int64_t top = r0 + rows - 1;
    for (int64_t u = r0; u < top; u++)
      for (int k = 0; k <= (int)(u - r0); k++) add(k, u);
    for (int64_t u = top; u < T; u++) {
      vw xv[G];
      for (int g = 0; g < G; g++) xv[g] = loadw(x + u * dh + f + kLanes * g);
      for (int k = 0; k < rows; k++) {
        const vw ws = splat<vw>(w(r0 + k, u));
        for (int g = 0; g < G; g++) c[k][g] = c[k][g] + ws * xv[g];
      }
    }
  }
  for (int k = 0; k < rows; k++)
    for (int g = 0; g < G; g++) storew(out + (r0 + k) * dh + f + kLanes * g, c[k][g]);
}

// Eight rows at a time: pairs of groups four rows at a time, a single group (a head of fewer
// than 2·kLanes features: 16 on AVX-512) all eight at once, so that each block keeps eight
// independent sums; the features past the last whole group one by one.
template <bool Rows>
LTH_SEQ_TARGET static void causal_weighted(const float* __restrict m, const float* __restrict x, float* __restrict out,
                                           int64_t T, int64_t dh) {
  const int64_t groups = dh / kLanes;
  for (int64_t r = 0; r < T; r += 8) {
    const int rows = T - r < 8 ? (int)(T - r) : 8;
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2) {
      causal_block<2, 4, Rows>(m, x, out, T, dh, r, rows < 4 ? rows : 4, kLanes * g);
      if (rows > 4) causal_block<2, 4, Rows>(m, x, out, T, dh, r + 4, rows - 4, kLanes * g);
    }
    if (g < groups) causal_block<1, 8, Rows>(m, x, out, T, dh, r, rows, kLanes * g);
    for (int64_t rr = r; rr < r + rows; rr++)
      for (int64_t f = kLanes * groups; f < dh; f++) {
        float c = 0.0f;
        const int64_t lo = Rows ? 0 : rr, hi = Rows ? rr : T - 1;
        for (int64_t u = lo; u <= hi; u++) c = c + (Rows ? m[rr * T + u] : m[u * T + rr]) * x[u * dh + f];
        out[rr * dh + f] = c;
      }
  }
}

// out[r] = Σ_{u<=r} m[r*T + u]·x[u] ([T, dh]): P·V, dS·K.
LTH_SEQ_TARGET static void causal_rows(const float* m, const float* x, float* out, int64_t T, int64_t dh) {
  causal_weighted<true>(m, x, out, T, dh);
}

// out[r] = Σ_{u>=r} m[u*T + r]·x[u] ([T, dh]): Pᵀ·dO, dSᵀ·Q.
LTH_SEQ_TARGET static void causal_cols(const float* m, const float* x, float* out, int64_t T, int64_t dh) {
  causal_weighted<false>(m, x, out, T, dh);
}

static constexpr SeqKernels kTable = {lstm_cell, lstm_cell_backward, softmax_row, softmax_row_backward,
                                      causal_dots, causal_rows, causal_cols};
