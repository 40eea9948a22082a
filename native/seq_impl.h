// The sequence kernels' loops (native/seq.cc): the LSTM cell and its gradient, the row
// softmax and its gradient. Included once per ISA inside its own namespace with
// LTH_SEQ_TARGET set to that ISA's target attribute (AVX2 without FMA, or the baseline). No
// standard headers here (see native/README.md).
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

// A value of type V (a float, or 8 lanes of one) from a float.
template <class V>
LTH_SEQ_TARGET static inline V splat(float a) {
  return V{} + a;
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
  v8f m = splat<v8f>(-__builtin_inff());
  v8i nan = {};
  for (int64_t j = 0; j < full; j += 8) {
    const v8f v = load8(x + j);
    m = v > m ? v : m;
    nan |= v != v;
  }
  if (rest) {
    const v8f v = load_part(x + full, rest, -__builtin_inff());
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
    v8f e = exp_approx(load_part(x + full, rest, 0.0f) - mv);
    for (int64_t l = rest; l < 8; l++) e[l] = 0.0f;
    for (int64_t l = 0; l < rest; l++) y[full + l] = e[l];
    s0 += low4(e);
    s1 += high4(e);
  }
  const float inv = (float)(1.0 / pair_sum(s0, s1));
  const v8f iv = splat<v8f>(inv);
  for (int64_t j = 0; j < full; j += 8) store8(y + j, load8(y + j) * iv);
  for (int64_t j = full; j < seen; j++) y[j] *= inv;
  for (int64_t j = seen; j < cols; j++) y[j] = 0;
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

static constexpr SeqKernels kTable = {lstm_cell, lstm_cell_backward, softmax_row, softmax_row_backward};
