// Sparse kernel bodies, included by native/sparse_kernels.cc once per ISA inside its own
// namespace with LTH_SP_TARGET set to that ISA's target attribute and LTH_SP_WIDTH to its
// vector width in floats: GCC generic vectors of 16 floats on AVX-512 (one zmm), 8 on AVX2
// (one ymm), 4 on the baseline. A generic vector wider than the ISA's registers has no
// register mode: GCC keeps it on the stack and every operation goes through memory.
// No standard headers here (see native/README.md); sparse_kernels.cc includes <cmath> for
// std::log.
//
// Activations are transposed into panels of 64 batch columns: column c of feature i is at
// (c / 64)·features·64 + i·64 + c % 64 (see sparse_kernels.h). ld, the padded batch, is a
// multiple of 16; each panel is one chunk of up to 64 columns (V = 1..64/kW vectors held
// in registers), so every nonzero is V vector FMAs, there is no scalar tail, and a chunk's
// rows are contiguous (no TLB miss per row on big evaluation batches). The
// nonzeros are visited in the pattern's packed order: column block by column block
// (see Pattern in sparse_pattern.h), so the activation rows a block reads stay in L1.

#include "vec_lanes.h"

constexpr int kW = LTH_SP_WIDTH;
typedef float vf __attribute__((vector_size(4 * LTH_SP_WIDTH), aligned(4), may_alias));
typedef int32_t vi __attribute__((vector_size(4 * LTH_SP_WIDTH)));

LTH_SP_TARGET static inline vf ldv(const float* p) { return *reinterpret_cast<const vf*>(p); }
LTH_SP_TARGET static inline void stv(float* p, vf v) { *reinterpret_cast<vf*>(p) = v; }
LTH_SP_TARGET static inline vf relu_v(vf a) {
  const vf z = {};
  return a < z ? z : a;  // NaN stays NaN
}
// Lanes whose column c0 + lane is below n; the others (batch padding) become 0.
LTH_SP_TARGET static inline vf keep_cols(vf a, int64_t c0, int64_t n) {
#define LTH_SP_ID(l) l
  const vi lane = {LTH_LANES(LTH_SP_WIDTH, LTH_SP_ID)};
#undef LTH_SP_ID
  const vi col = lane + (int32_t)c0;
  return (vf)((vi)a & (col < (int32_t)n));
}

constexpr int64_t kPanel = 64;

// The panel holding column c0 of a [features, ld] activation.
LTH_SP_TARGET static inline const float* panel(const float* a, int64_t features, int64_t c0) {
  return a + (c0 / kPanel) * features * kPanel;
}
LTH_SP_TARGET static inline float* panel(float* a, int64_t features, int64_t c0) {
  return a + (c0 / kPanel) * features * kPanel;
}

// Calls body.template operator()<V>(c0) for each column chunk (panel) of up to 64 columns,
// V its vectors of kW floats.
template <class Body>
LTH_SP_TARGET static inline void for_chunks(int64_t ld, Body body) {
  constexpr int k16 = 16 / kW;  // vectors per 16 columns
  for (int64_t c0 = 0; c0 < ld; c0 += 64) {
    switch ((ld - c0) >= 64 ? 4 : (ld - c0) / 16) {
      case 4: body.template operator()<4 * k16>(c0); break;
      case 3: body.template operator()<3 * k16>(c0); break;
      case 2: body.template operator()<2 * k16>(c0); break;
      default: body.template operator()<1 * k16>(c0); break;
    }
  }
}

// One (block, row) segment of a product: acc[v] += Σ_k w(k)·in[idx(k)·64 + kW·v] for k in
// [k0, k1), accumulated into out[kW·v] (loaded and stored once per segment).
template <int V, class Weight, class Index>
LTH_SP_TARGET static inline void segment(float* out, const float* in, int32_t k0, int32_t k1, Weight w, Index idx) {
  vf a[V];
  for (int v = 0; v < V; v++) a[v] = ldv(out + kW * v);
  for (int32_t k = k0; k < k1; k++) {
    const float* x = in + (int64_t)idx(k) * kPanel;
    const float wk = w(k);
    for (int v = 0; v < V; v++) a[v] += wk * ldv(x + kW * v);
  }
  for (int v = 0; v < V; v++) stv(out + kW * v, a[v]);
}

struct ForwardChunk {
  const Pattern& p;
  const float *vals, *inT, *bias;
  float* outT;
  int64_t r0, r1, n, blk0, blk1;
  bool relu, finish;
  template <int V>
  LTH_SP_TARGET void operator()(int64_t c0) const {
    float* out = panel(outT, p.rows, c0);
    const float* in = panel(inT, p.cols, c0);
    for (int64_t r = r0; r < r1; r++) {
      const vf b = vf{} + (bias ? bias[r] : 0.0f);
      for (int v = 0; v < V; v++) stv(out + r * kPanel + kW * v, b);
    }
    for (int64_t b = blk0; b < blk1; b++) {
      const int32_t* seg = p.seg + b * p.rows;
      for (int64_t r = r0; r < r1; r++)
        if (seg[r] < seg[r + 1])
          segment<V>(out + r * kPanel, in, seg[r], seg[r + 1], [&](int32_t k) { return vals[k]; },
                     [&](int32_t k) { return p.col[k]; });
    }
    if (!finish || (!relu && c0 + kW * V <= n)) return;
    for (int64_t r = r0; r < r1; r++)
      for (int v = 0; v < V; v++) {
        float* o = out + r * kPanel + kW * v;
        vf y = relu ? relu_v(ldv(o)) : ldv(o);
        if (c0 + kW * (v + 1) > n) y = keep_cols(y, c0 + kW * v, n);
        stv(o, y);
      }
  }
};

// Forward over rows [r0, r1): outT[r, c] = act(bias[r] + Σ_k vals[k]·inT[col[k], c]) for
// c < n, 0 for n ≤ c < ld. Column blocks of the pattern keep the rows of inT being read in L1.
LTH_SP_TARGET static void sp_forward(const Pattern& p, const float* vals, const float* inT, float* outT,
                                     const float* bias, int64_t r0, int64_t r1, int64_t n, int64_t ld, bool relu) {
  for_chunks(ld, ForwardChunk{p, vals, inT, bias, outT, r0, r1, n, 0, p.nbc, relu, true});
}

// The forward's sums over column blocks [blk0, blk1) only, all rows and all ld columns:
// outT[r, c] = bias[r] (0 if null) + Σ vals[k]·inT[col[k], c] over those blocks' nonzeros.
// No activation; the padding columns are not cleared (see sp_add_act).
LTH_SP_TARGET static void sp_forward_blocks(const Pattern& p, const float* vals, const float* inT, float* outT,
                                            const float* bias, int64_t blk0, int64_t blk1, int64_t ld) {
  for_chunks(ld, ForwardChunk{p, vals, inT, bias, outT, 0, p.rows, ld, blk0, blk1, false, false});
}

// out = act(a + b) over [rows, ld] panels, 0 in the padding columns n <= c < ld.
LTH_SP_TARGET static void sp_add_act(const float* a, const float* b, float* out, int64_t rows, int64_t n, int64_t ld,
                                     bool relu) {
  for (int64_t c = 0; c < ld; c += kW) {
    const int64_t at = (c / kPanel) * rows * kPanel + c % kPanel;
    for (int64_t r = 0; r < rows; r++) {
      const int64_t i = at + r * kPanel;
      vf y = ldv(a + i) + ldv(b + i);
      if (relu) y = relu_v(y);
      if (c + kW > n) y = keep_cols(y, c, n);
      stv(out + i, y);
    }
  }
}

struct InputGradChunk {
  const Pattern& p;
  const float *vals, *gyT;
  float* gxT;
  int64_t i0, i1;
  template <int V>
  LTH_SP_TARGET void operator()(int64_t c0) const {
    float* gx = panel(gxT, p.cols, c0);
    const float* gy = panel(gyT, p.rows, c0);
    for (int64_t i = i0; i < i1; i++)
      for (int v = 0; v < V; v++) stv(gx + i * kPanel + kW * v, vf{});
    for (int64_t b = 0; b < p.nbr; b++) {
      const int32_t* seg = p.tseg + b * p.cols;
      for (int64_t i = i0; i < i1; i++)
        if (seg[i] < seg[i + 1])
          segment<V>(gx + i * kPanel, gy, seg[i], seg[i + 1], [&](int32_t k) { return vals[p.tpos[k]]; },
                     [&](int32_t k) { return p.trow[k]; });
    }
  }
};

// Input gradient over columns [i0, i1): gxT[i, c] = Σ vals[k]·gyT[row(k), c] over the
// nonzeros k of column i (overwrites), by row blocks of the transposed pattern.
LTH_SP_TARGET static void sp_input_grad(const Pattern& p, const float* vals, const float* gyT, float* gxT, int64_t i0,
                                        int64_t i1, int64_t ld) {
  for_chunks(ld, InputGradChunk{p, vals, gyT, gxT, i0, i1});
}

// One round of sum_w: a and b each hold partial sums in blocks of 2H lanes; the result's
// blocks of H lanes alternate a's and b's, each lane the sum of the two halves of a block.
template <int H>
LTH_SP_TARGET static inline vf fold(vf a, vf b) {
#define LTH_SP_LO(l) ((l) / H * 2 * H + (l) % H)
#define LTH_SP_HI(l) (LTH_SP_LO(l) + H)
  const vi lo = {LTH_LANES(LTH_SP_WIDTH, LTH_SP_LO)}, hi = {LTH_LANES(LTH_SP_WIDTH, LTH_SP_HI)};
#undef LTH_SP_LO
#undef LTH_SP_HI
  return __builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi);
}

// The fold of N vectors: pairs folded into N/2 vectors, and so on down to one.
template <int N>
LTH_SP_TARGET static inline vf fold_all(const vf* s) {
  if constexpr (N == 1) {
    return s[0];
  } else {
    vf t[N / 2];
    for (int i = 0; i < N / 2; i++) t[i] = fold<N / 2>(s[2 * i], s[2 * i + 1]);
    return fold_all<N / 2>(t);
  }
}

// Sums of kW vectors: lane j of the result is the sum of the lanes of s[j]. log2(kW)
// rounds of pairwise shuffles halve the partial sums per vector and merge pairs of
// vectors: on AVX-512, 30 shuffles for 16 dot products instead of 16 horizontal sums.
LTH_SP_TARGET static inline vf sum_w(const vf* s) { return fold_all<kW>(s); }

struct WeightGradChunk {
  const Pattern& p;
  const float *gyT, *xT;
  float *gvals, *gbias;
  int64_t r0, r1, blk0, blk1;
  template <int V>
  LTH_SP_TARGET void operator()(int64_t c0) const {
    const float* gy = panel(gyT, p.rows, c0);
    const float* x = panel(xT, p.cols, c0);
    if (gbias)
      for (int64_t r = r0; r < r1; r++) {
        vf s = ldv(gy + r * kPanel);
        for (int v = 1; v < V; v++) s += ldv(gy + r * kPanel + kW * v);
        float t = 0.0f;
        for (int j = 0; j < kW; j++) t += s[j];
        gbias[r] += t;
      }
    if (!gvals) return;
    // Per block, the nonzeros of rows r0..r1 are contiguous in packed order: walk them row
    // by row (the row's gradient stays in registers) and reduce every kW dot products.
    // The column indices are read through a local: each dot product is stored to s (a
    // may_alias vector, which could alias the pattern), after which p.col would be loaded
    // again for every nonzero (11% of this kernel on LeNet's fc1 at 7.7%).
    const int32_t* col = p.col;
    vf s[kW];
    for (int64_t b = blk0; b < blk1; b++) {
      const int32_t* seg = p.seg + b * p.rows;
      int32_t base = seg[r0];
      int fill = 0;
      for (int64_t r = r0; r < r1; r++) {
        const int32_t k0 = seg[r], k1 = seg[r + 1];
        if (k0 == k1) continue;
        vf g[V];
        for (int v = 0; v < V; v++) g[v] = ldv(gy + r * kPanel + kW * v);
        for (int32_t k = k0; k < k1; k++) {
          const float* xr = x + (int64_t)col[k] * kPanel;
          vf d = g[0] * ldv(xr);
          for (int v = 1; v < V; v++) d += g[v] * ldv(xr + kW * v);
          s[fill++] = d;
          if (fill == kW) {
            stv(gvals + base, ldv(gvals + base) + sum_w(s));
            base += kW;
            fill = 0;
          }
        }
      }
      if (fill) {
        for (int j = fill; j < kW; j++) s[j] = vf{};
        const vf sum = sum_w(s);
        for (int j = 0; j < fill; j++) gvals[base + j] += sum[j];
      }
    }
  }
};

// Weight gradient over rows [r0, r1): gvals[k] += Σ_c gyT[row(k), c]·xT[col(k), c], over
// the nonzeros in packed order (contiguous per column block), kW at a time; and the bias
// gradient gbias[r] += Σ_c gyT[r, c]. Either output may be null.
LTH_SP_TARGET static void sp_weight_grad(const Pattern& p, const float* gyT, const float* xT, float* gvals,
                                         float* gbias, int64_t r0, int64_t r1, int64_t ld) {
  for_chunks(ld, WeightGradChunk{p, gyT, xT, gvals, gbias, r0, r1, 0, p.nbc});
}

// The weight gradient at the nonzeros of column blocks [blk0, blk1) only (all rows), and
// the bias gradient if gbias is not null; as sp_weight_grad otherwise.
LTH_SP_TARGET static void sp_weight_grad_blocks(const Pattern& p, const float* gyT, const float* xT, float* gvals,
                                                float* gbias, int64_t blk0, int64_t blk1, int64_t ld) {
  for_chunks(ld, WeightGradChunk{p, gyT, xT, gvals, gbias, 0, p.rows, blk0, blk1});
}

#if LTH_SP_AVX
// c[j] = column j of the 8x8 block whose row i is r[i] (unpack, shuffle, permute: 24 shuffles).
LTH_SP_TARGET static inline void transpose8(const __m256* r, __m256* c) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; h++) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int q = 0; q < 4; q++) {
    c[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
    c[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
  }
}

// d[c·ldo + r] (+)= s[r·ldx + c] for an 8x8 block.
LTH_SP_TARGET static inline void tr8x8(const float* s, int64_t ldx, float* d, int64_t ldo, bool acc) {
  __m256 r[8], c[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + i * ldx);
  transpose8(r, c);
  for (int j = 0; j < 8; j++) {
    float* dj = d + j * ldo;
    _mm256_storeu_ps(dj, acc ? _mm256_add_ps(_mm256_loadu_ps(dj), c[j]) : c[j]);
  }
}
#endif

// out[c·ldo + r] (+)= x[r·ldx + c] for r < rows, c in [c0, c1); without acc, also
// out[c·ldo + r] = 0 for rows <= r < ldo.
LTH_SP_TARGET static void transpose(const float* x, float* out, int64_t rows, int64_t cols, int64_t ldx, int64_t ldo,
                                    bool acc, int64_t c0, int64_t c1) {
  (void)cols;
  int64_t r8 = 0;
#if LTH_SP_AVX
  // Eight rows of x at a time across all the columns: eight streams through x, which the
  // hardware prefetchers follow. Eight columns of every row at a time makes 64 streams for
  // an evaluation chunk (64 rows of 784), read at 6.5 GB/s: a third of the chunk's time.
  r8 = rows & ~(int64_t)7;
  const int64_t c8 = c0 + ((c1 - c0) & ~(int64_t)7);
  for (int64_t r = 0; r < r8; r += 8) {
    for (int64_t c = c0; c < c8; c += 8) tr8x8(x + r * ldx + c, ldx, out + c * ldo + r, ldo, acc);
    for (int64_t j = c8; j < c1; j++)
      for (int64_t i = r; i < r + 8; i++) out[j * ldo + i] = (acc ? out[j * ldo + i] : 0.0f) + x[i * ldx + j];
  }
#endif
  for (int64_t c = c0; c < c1; c++)
    for (int64_t r = r8; r < rows; r++) out[c * ldo + r] = (acc ? out[c * ldo + r] : 0.0f) + x[r * ldx + c];
  if (!acc)
    for (int64_t j = c0; j < c1; j++)
      for (int64_t r = rows; r < ldo; r++) out[j * ldo + r] = 0.0f;
}

// x [n, features] → panels (zero padding up to each panel's 64 columns).
LTH_SP_TARGET static void to_panels(const float* x, float* out, int64_t n, int64_t features, int64_t ld) {
  for (int64_t c0 = 0; c0 < ld; c0 += kPanel) {
    const int64_t rows = n - c0 < 0 ? 0 : n - c0 < kPanel ? n - c0 : kPanel;
    transpose(x + c0 * features, panel(out, features, c0), rows, features, features, kPanel, false, 0, features);
  }
}

// y [n, features] (+)= panels: eight rows of y at a time across all the features, so that
// each row of y is written front to back. All of a panel's rows at once (transpose's own
// order) writes 32 bytes to each of 64 rows of y in turn, rows whose starts lie a multiple
// of 4 KiB apart for many widths (4096 features: 16 KiB), all in one L1 set: a
// 4096-feature gradient took 5 times as long as toPanels.
LTH_SP_TARGET static void from_panels(const float* in, float* y, int64_t n, int64_t features, int64_t ld, bool acc) {
  for (int64_t c0 = 0; c0 < ld && c0 < n; c0 += kPanel) {
    const int64_t rows = n - c0 < kPanel ? n - c0 : kPanel;
    for (int64_t s = 0; s < rows; s += 8)
      transpose(panel(in, features, c0), y + c0 * features, features, rows, kPanel, features, acc, s,
                s + 8 < rows ? s + 8 : rows);
  }
}

// e^x for x <= 0 (or NaN), lane by lane: Cephes' expf (range reduction by ln 2 in two
// parts, degree-5 polynomial), within 2 ulp; below -87 (e^x < 1.7e-38) it is 0.
LTH_SP_TARGET static inline vf exp_nonpositive(vf x) {
  const vf lo = vf{} - 87.0f, magic = vf{} + 12582912.0f;  // 1.5·2^23 rounds to an integer
  const vi tiny = x < lo;
  const vf xc = tiny ? lo : x;
  const vf t = xc * 1.44269504088896341f + magic;
  const vi ni = (vi)t - (vi)magic;
  const vf nf = t - magic;
  const vf r = (xc - nf * 0.693359375f) - nf * -2.12194440e-4f;
  vf p = vf{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const vf e = (vf)((vi)(p * r * r + r + 1.0f) + (ni << 23));
  return x != x ? x : tiny ? vf{} : e;
}

// Per column (lane) of kW logits columns at x (class j at x + j·64), the largest logit;
// NaN wins, as Math.max.
LTH_SP_TARGET static inline vf class_max(const float* x, int64_t classes) {
  vf mx = ldv(x);
  for (int64_t j = 1; j < classes; j++) {
    const vf v = ldv(x + j * kPanel);
    mx = (v > mx || v != v) ? v : mx;
  }
  return mx;
}

// Softmax cross-entropy of the logits panels [classes, ld] against labels (one per column
// < n): returns the sum of the columns' losses (log Σ e^(x - max) - (x_label - max), in
// double) and writes gradT = (softmax - onehot)·scale, 0 in the padding columns.
LTH_SP_TARGET static double sp_softmax_xent(const float* logitsT, float* gradT, const int32_t* labels,
                                            int64_t classes, int64_t n, int64_t ld, float scale) {
  double total = 0;
  for (int64_t c = 0; c < ld; c += kW) {
    const float* x = panel(logitsT, classes, c) + c % kPanel;
    float* g = panel(gradT, classes, c) + c % kPanel;
    if (c >= n) {  // a vector of padding only (ld is a multiple of 16, kW may be less)
      for (int64_t j = 0; j < classes; j++) stv(g + j * kPanel, vf{});
      continue;
    }
    const vf mx = class_max(x, classes);
    vf sum = {};
    for (int64_t j = 0; j < classes; j++) {
      const vf e = exp_nonpositive(ldv(x + j * kPanel) - mx);
      stv(g + j * kPanel, e);
      sum += e;
    }
    const vf k = scale / sum;
    for (int64_t j = 0; j < classes; j++) stv(g + j * kPanel, keep_cols(ldv(g + j * kPanel) * k, c, n));
    for (int64_t l = 0; l < kW && c + l < n; l++) {
      const int32_t label = labels[c + l];
      total += std::log((double)sum[l]) - ((double)x[label * kPanel + l] - (double)mx[l]);
      g[label * kPanel + l] -= scale;
    }
  }
  return total;
}

// The loss and accuracy of logits panels [classes, ld] against labels (one per column <
// n): adds each column's softmax cross-entropy (as sp_softmax_xent) to *loss and counts
// the columns whose first maximum is the label (as countCorrect) in *correct.
LTH_SP_TARGET static void sp_eval_logits(const float* logitsT, const int32_t* labels, int64_t classes, int64_t n,
                                         int64_t ld, double* loss, int64_t* correct) {
  for (int64_t c = 0; c < ld && c < n; c += kW) {
    const float* x = panel(logitsT, classes, c) + c % kPanel;
    const vf mx = class_max(x, classes);
    vf sum = {};
    for (int64_t j = 0; j < classes; j++) sum += exp_nonpositive(ldv(x + j * kPanel) - mx);
    for (int64_t l = 0; l < kW && c + l < n; l++) {
      const int32_t label = labels[c + l];
      *loss += std::log((double)sum[l]) - ((double)x[label * kPanel + l] - (double)mx[l]);
      int64_t best = 0;
      for (int64_t j = 1; j < classes; j++)
        if (x[j * kPanel + l] > x[best * kPanel + l]) best = j;
      if (best == label) ++*correct;
    }
  }
}

// g = y > 0 ? g : 0 over len floats (a multiple of 16): ReLU's backward on panels.
LTH_SP_TARGET static void sp_relu_mask(float* g, const float* y, int64_t len) {
  for (int64_t i = 0; i < len; i += kW) {
    const vf yv = ldv(y + i);
    stv(g + i, yv > vf{} ? ldv(g + i) : vf{});
  }
}

// outT[f, c] = src[rows[c]·rowSize + f] for features f in [f0, f1) and samples c < n, 0 in
// the padding columns: a minibatch gathered from a data set straight into panels.
LTH_SP_TARGET static void sp_gather_panels(const float* src, int64_t rowSize, const int32_t* rows, int64_t n,
                                           int64_t f0, int64_t f1, float* outT, int64_t ld) {
  for (int64_t c0 = 0; c0 < ld; c0 += kPanel) {
    float* out = panel(outT, rowSize, c0);
    const int64_t m = n - c0 < 0 ? 0 : n - c0 < kPanel ? n - c0 : kPanel;
    int64_t c = 0;
#if LTH_SP_AVX
    for (; c + 8 <= m; c += 8) {
      const float* s[8];
      for (int i = 0; i < 8; i++) s[i] = src + (int64_t)rows[c0 + c + i] * rowSize;
      int64_t f = f0;
      for (; f + 8 <= f1; f += 8) {
        __m256 r[8], col[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s[i] + f);
        transpose8(r, col);
        for (int j = 0; j < 8; j++) _mm256_storeu_ps(out + (f + j) * kPanel + c, col[j]);
      }
      for (; f < f1; f++)
        for (int i = 0; i < 8; i++) out[f * kPanel + c + i] = s[i][f];
    }
#endif
    for (; c < m; c++) {
      const float* s = src + (int64_t)rows[c0 + c] * rowSize;
      for (int64_t f = f0; f < f1; f++) out[f * kPanel + c] = s[f];
    }
    for (int64_t f = f0; f < f1; f++)
      for (int64_t j = m; j < kPanel; j++) out[f * kPanel + j] = 0.0f;
  }
}

static const SparseKernels kTable = {sp_forward,       sp_input_grad,    sp_weight_grad,   to_panels,
                                     from_panels,      sp_softmax_xent,  sp_relu_mask,     sp_forward_blocks,
                                     sp_add_act,       sp_weight_grad_blocks, sp_gather_panels, sp_eval_logits};
