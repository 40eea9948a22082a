// The row softmax and its gradient (native/seq.cc), included once per ISA inside its own
// namespace with LTH_SEQ_TARGET set to that ISA's target attribute (AVX2 without FMA, or
// the baseline). No standard headers here (see native/README.md).
//
// Eight float lanes at a time (GCC vector extensions: one AVX2 register, two SSE ones). The
// arithmetic is the same on every ISA, and the AVX2 copy is compiled without FMA (no
// multiply-add contraction), so the results are bitwise the same. Sums run in double
// lanes added in a fixed order: a row is not one chain of dependent double adds, which
// took most of a text_transformer's attention on the baseline ISA.

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

LTH_SEQ_TARGET static inline v8f load8(const float* p) {
  v8f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

LTH_SEQ_TARGET static inline void store8(float* p, v8f v) { __builtin_memcpy(p, &v, sizeof v); }

LTH_SEQ_TARGET static inline v8f splat(float a) { return v8f{} + a; }

LTH_SEQ_TARGET static inline v4d low4(v8f a) { return v4d{a[0], a[1], a[2], a[3]}; }
LTH_SEQ_TARGET static inline v4d high4(v8f a) { return v4d{a[4], a[5], a[6], a[7]}; }

// The lanes of two double accumulators, added in a fixed order.
LTH_SEQ_TARGET static inline double lanes_sum(v4d a, v4d b) {
  const v4d s = a + b;
  return (s[0] + s[2]) + (s[1] + s[3]);
}

// fast_exp (seq.cc) for eight lanes: the same clamp, reduction and polynomial.
LTH_SEQ_TARGET static inline v8f exp8(v8f x) {
  const v8f lo = splat(-87.0f), hi = splat(88.0f);
  v8f c = x < lo ? lo : x;  // NaN stays NaN
  c = c > hi ? hi : c;
  const v8f fn = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const v8f r = (c - fn * 0.693359375f) + fn * 2.12194440e-4f;
  v8f p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v8i bits = (__builtin_convertvector(fn, v8i) + 127) << 23;
  v8f scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The first n < 8 entries of p in a vector, the others `fill`.
LTH_SEQ_TARGET static inline v8f load_part(const float* p, int64_t n, float fill) {
  v8f v = splat(fill);
  for (int64_t l = 0; l < n; l++) v[l] = p[l];
  return v;
}

// The softmax of the first `seen` entries of row x into y (y may be x), zeros after them. A
// NaN among them makes the whole row NaN (Math.max's rule for the maximum).
LTH_SEQ_TARGET static void softmax_row(const float* x, float* y, int64_t cols, int64_t seen) {
  const int64_t full = seen & ~(int64_t)7, rest = seen - full;
  v8f m = splat(-__builtin_inff());
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
  const v8f mv = splat(mx);
  v4d s0 = {}, s1 = {};
  for (int64_t j = 0; j < full; j += 8) {
    const v8f e = exp8(load8(x + j) - mv);
    store8(y + j, e);
    s0 += low4(e);
    s1 += high4(e);
  }
  if (rest) {
    // The lanes past the row hold e^(0 - max): zeroed before the sum.
    v8f e = exp8(load_part(x + full, rest, 0.0f) - mv);
    for (int64_t l = rest; l < 8; l++) e[l] = 0.0f;
    for (int64_t l = 0; l < rest; l++) y[full + l] = e[l];
    s0 += low4(e);
    s1 += high4(e);
  }
  const float inv = (float)(1.0 / lanes_sum(s0, s1));
  const v8f iv = splat(inv);
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
  const float d = (float)lanes_sum(d0, d1);
  const v8f dv = splat(d);
  for (int64_t j = 0; j < full; j += 8) store8(gi + j, load8(y + j) * (load8(go + j) - dv));
  for (int64_t j = full; j < cols; j++) gi[j] = y[j] * (go[j] - d);
}

static constexpr SoftmaxKernels kTable = {softmax_row, softmax_row_backward};
