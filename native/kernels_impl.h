// The ISA-independent part of the kernels: the GEMM driver (blocking and packing)
// and the elementwise kernels, written as plain loops that the compiler vectorises
// with the flags of the including translation unit.
//
// Included, inside an anonymous namespace, by kernels_{avx512,avx2,scalar}.cc after
// kernels_common.h and after they define:
//   constexpr int MR, NR;            register tile of the micro-kernel
//   constexpr int64_t KCMAX, NCMAX;  cache blocking (NCMAX a multiple of NR)
//   void micro_kernel(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb,
//                     float* C, int64_t ldc, int mr, int nr, bool add);
//       C[0:mr, 0:nr] (+)= Ap[kc x MR]ᵀ · B[kc x NR], one FMA/multiply-add chain
//       per element in order p = 0..kc-1; `add` adds to C, otherwise overwrites it.
//       With lda > 0, A is not packed: row i's kc values are A[i*lda .. i*lda + kc).
//       B's row p is B[p*ldb .. p*ldb + NR): ldb is NR for a packed panel, op(B)'s row
//       length where the driver reads it in place (whole panels only: NR columns read).
//   constexpr bool kReadsAInPlace;   whether micro_kernel takes lda > 0 (Kernels::aInPlace)
//   int kernel_rows(int mr);         the rows micro_kernel reads for an mr-row panel; lda > 0
//                                    is passed only where that is mr (no row past op(A)'s)
//   void pack_transpose(const float* src, int64_t ld, int rows, int64_t cols,
//                       float* dst, int stride);
//       dst[c*stride + r] = src[r*ld + c] for r < rows, 0 for rows <= r < stride.
//   constexpr int64_t WINO4_NARROW_TILES;  Kernels::wino4NarrowTiles
//   void relu_bits(const float* y, uint8_t* bits, int64_t n);  rowBiasAct's mask of n values
//   void mask_by_bits(...);                                   Kernels::maskByBits
// and, optionally, an unpacked A·Bᵀ with the rule for when it wins (Kernels::gemmNT,
// Kernels::ntFaster): a function named by LTH_GEMM_NT and bool nt_faster(m, n, k).
// Without them the table's gemmNT is gemm, never chosen.
//
// No standard C++ headers here (see kernels.h).

constexpr int64_t kBpOffset = (MR * KCMAX + 15) & ~(int64_t)15;  // 64-byte aligned

// op(B) = B is read in place, its rows n apart, where a row is at most kBInPlaceMaxRow
// floats (a page) and the column block is whole panels: a k-block's panel (kc rows of NR
// floats) then stays in L1 for the row panels after the first, and the copy into a packed
// panel is spared (4-5% of an F(4x4) convolution's time, whose products have rows of 128
// tiles). Longer rows are packed: a fully connected layer's 16384-float rows would put
// each of a panel's rows on a page of its own.
constexpr int64_t kBInPlaceMaxRow = 1024;

void gemm(const lth::GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* scratch) {
  if (r0 >= r1 || c0 >= c1) return;
  const int64_t m = g.m, k = g.k, n = g.n;
  const float* A = g.a;
  const float* B = g.b;
  float* C = g.c;
  if (k == 0) return empty_product(g, r0, r1, c0, c1);
  float* Ap = scratch;               // MR x KCMAX
  float* Bp = scratch + kBpOffset;  // KCMAX x NCMAX, as NCMAX/NR panels of kc x NR
  // k-blocks depend on k only, so every element sees the same summation order.
  const int64_t nkb = (k + KCMAX - 1) / KCMAX;
  const int64_t kcb = (k + nkb - 1) / nkb;
  for (int64_t jc = c0; jc < c1; jc += NCMAX) {
    const int64_t nc = min64(NCMAX, c1 - jc);
    const bool bInPlace = !g.bPanel && !g.transB && n <= kBInPlaceMaxRow && nc % NR == 0;  // per column block
    for (int64_t pc = 0; pc < k; pc += kcb) {
      const int64_t kc = min64(kcb, k - pc);
      if (g.bPanel || bInPlace) {
        // Read in place below.
      } else if (!g.transB) {
        pack_rows_into_panels_t<NR>(B + pc * n + jc, n, nc, kc, Bp);  // op(B)[p][j] = B[p*n + j]
      } else {
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = (int)min64(NR, nc - jr);
          pack_transpose(B + (jc + jr) * k + pc, k, nr, kc, Bp + (jr / NR) * kc * NR, NR);  // op(B)[p][j] = B[j*k + p]
        }
      }
      const bool add = g.accumulate || pc > 0;
      for (int64_t ir = r0; ir < r1; ir += MR) {
        const int mr = (int)min64(MR, r1 - ir);
        const float* Apanel = Ap;
        int64_t lda = 0;  // 0: Apanel packed; else the kernel reads op(A) in place, rows lda apart
        if (g.aPacked) {
          Apanel = A + ir * k + pc * MR;  // panel ir/MR, from row pc of its k x MR
        } else if (!g.transA && kReadsAInPlace && kernel_rows(mr) == mr) {
          Apanel = A + ir * k + pc;  // op(A)[i][p] = A[i*k + p], each row's kc values in a run
          lda = k;
        } else if (!g.transA) {
          pack_transpose(A + ir * k + pc, k, mr, kc, Ap, MR);  // op(A)[i][p] = A[i*k + p]
        } else {
          pack_copy<MR>(A + pc * m + ir, m, mr, kc, Ap);  // op(A)[i][p] = A[p*m + i]
        }
        float* Crow = C + ir * n + jc;
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = (int)min64(NR, nc - jr);
          const float* Bpanel = g.bPanel  ? B + (jc + jr) / NR * g.bPanel + pc * NR
                                : bInPlace ? B + pc * n + jc + jr
                                           : Bp + (jr / NR) * kc * NR;
          micro_kernel(kc, Apanel, lda, Bpanel, bInPlace ? n : NR, Crow + jr, n, mr, nr, add);
        }
      }
    }
  }
}

constexpr size_t kScratchFloats = (size_t)(kBpOffset + KCMAX * NCMAX + 16);

void packA(const float* a, int64_t m, int64_t k, bool transA, int64_t r0, int64_t r1, float* dst) {
  for (int64_t ir = r0; ir < r1; ir += MR) {
    const int mr = (int)min64(MR, m - ir);
    if (!transA)
      pack_transpose(a + ir * k, k, mr, k, dst + ir * k, MR);
    else
      pack_copy<MR>(a + ir, m, mr, k, dst + ir * k);
  }
}

void packB(const float* b, int64_t k, int64_t n, bool transB, int64_t q0, int64_t q1, float* dst) {
  if (!transB) {
    const int64_t c0 = q0 * NR;
    pack_rows_into_panels_t<NR>(b + c0, n, min64(q1 * NR, n) - c0, k, dst + q0 * k * NR);
    return;
  }
  for (int64_t q = q0; q < q1; q++)
    pack_transpose(b + q * NR * k, k, (int)min64(NR, n - q * NR), k, dst + q * k * NR, NR);
}

// ---------------------------------------------------------------- elementwise

void biasAct(const float* x, const float* bias, float* out, int64_t rows, int64_t cols, bool relu) {
  for (int64_t i = 0; i < rows; i++) {
    const float* xr = x + i * cols;
    float* o = out + i * cols;
    if (relu) {
      for (int64_t j = 0; j < cols; j++) {
        const float v = xr[j] + bias[j];
        o[j] = v < 0.0f ? 0.0f : v;  // NaN stays NaN, as in the reference
      }
    } else {
      for (int64_t j = 0; j < cols; j++) o[j] = xr[j] + bias[j];
    }
  }
}

void rowBiasAct(const float* x, float* y, const float* bias, int64_t rows, int64_t cols, bool relu, uint8_t* bits) {
  // Where rows start on whole bytes of the mask, each row's bits are taken while it is in L1.
  const bool rowBits = bits && cols % 8 == 0;
  for (int64_t r = 0; r < rows; r++) {
    const float bv = bias ? bias[r] : 0.0f;
    const float* q = x + r * cols;
    float* p = y + r * cols;
    if (relu) {
      for (int64_t k = 0; k < cols; k++) {
        const float v = q[k] + bv;
        p[k] = v < 0.0f ? 0.0f : v;  // NaN stays NaN
      }
    } else {
      for (int64_t k = 0; k < cols; k++) p[k] = q[k] + bv;
    }
    if (rowBits) relu_bits(p, bits + r * (cols / 8), cols);
  }
  if (bits && !rowBits) relu_bits(y, bits, rows * cols);
}

void reluBackward(const float* gradOut, const float* y, float* gradIn, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    // The gradient is read whatever the mask says. Read only under the mask, it compiles
    // to a masked load (AVX2's vmaskmovps; on AVX-512 one merging into the last
    // iteration's register); read always, to a plain load and a blend, or a zeroing masked
    // load: 0.66-0.78 of the time over 3.9M floats.
    const float g = gradOut[i];
    gradIn[i] = y[i] > 0.0f ? g : 0.0f;
  }
}

void sumRows(const float* x, float* out, int64_t rows, int64_t cols, int64_t ld, bool accumulate) {
  constexpr int64_t CH = 256;
  double acc[CH];
  for (int64_t j0 = 0; j0 < cols; j0 += CH) {
    const int64_t w = min64(CH, cols - j0);
    for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
    for (int64_t i = 0; i < rows; i++) {
      const float* xr = x + i * ld + j0;
      for (int64_t j = 0; j < w; j++) acc[j] += (double)xr[j];
    }
    float* o = out + j0;
    if (accumulate)
      for (int64_t j = 0; j < w; j++) o[j] = (float)((double)o[j] + acc[j]);
    else
      for (int64_t j = 0; j < w; j++) o[j] = (float)acc[j];
  }
}

// All ones where the mask keeps the entry (nonzero, NaN included), else zero.
inline uint32_t keep_bits(float mask) { return mask != 0.0f ? ~0u : 0u; }
// x where keep is all ones, +0.0f where it is zero. A select written as bits: the same
// select as a ternary on the stored values, which GCC compiles for AVX2 to a branch per
// entry (mispredicted half the time on a random mask) instead of vector code.
inline float keep_or_zero(float x, uint32_t keep) {
  return __builtin_bit_cast(float, __builtin_bit_cast(uint32_t, x) & keep);
}

void adam(float* __restrict p, float* __restrict g, float* __restrict m, float* __restrict v,
          const float* __restrict mask, int64_t n, float beta1, float beta2, float ob1, float ob2, float stepSize,
          float invBc2, float eps) {
  if (mask) {
    for (int64_t i = 0; i < n; i++) {
      const float gi = g[i];
      g[i] = 0.0f;
      const float mi = beta1 * m[i] + ob1 * gi;
      const float vi = beta2 * v[i] + ob2 * gi * gi;
      const float pi = p[i] - stepSize * mi / (__builtin_sqrtf(vi) * invBc2 + eps);
      const uint32_t keep = keep_bits(mask[i]);
      m[i] = keep_or_zero(mi, keep);
      v[i] = keep_or_zero(vi, keep);
      p[i] = keep_or_zero(pi, keep);
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      const float gi = g[i];
      g[i] = 0.0f;
      const float mi = beta1 * m[i] + ob1 * gi;
      const float vi = beta2 * v[i] + ob2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] - stepSize * mi / (__builtin_sqrtf(vi) * invBc2 + eps);
    }
  }
}

void sgd(float* __restrict p, float* __restrict g, float* __restrict buf, const float* __restrict mask,
         int64_t n, float lr, float momentum, float weightDecay) {
  if (mask) {
    for (int64_t i = 0; i < n; i++) {
      const float gi = g[i] + weightDecay * p[i];
      g[i] = 0.0f;
      const float bi = momentum * buf[i] + gi;
      const float pi = p[i] - lr * bi;
      const uint32_t keep = keep_bits(mask[i]);
      buf[i] = keep_or_zero(bi, keep);
      p[i] = keep_or_zero(pi, keep);
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      const float gi = g[i] + weightDecay * p[i];
      g[i] = 0.0f;
      const float bi = momentum * buf[i] + gi;
      buf[i] = bi;
      p[i] = p[i] - lr * bi;
    }
  }
}

void applyMask(float* __restrict x, const float* __restrict mask, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = mask[i] == 0.0f ? 0.0f : x[i];
}

// ---------------------------------------------------------------- Winograd F(2x2, 3x3)
//
// Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], Aᵀ = [1 1 1 0; 0 1 -1 -1]. Both passes
// are loops over the tiles of a row, which the compiler vectorises (stride-2 loads in
// winoIn's first pass and stores in winoOut's last).

void winoIn(const float* __restrict q, int64_t qs, int64_t ld, int64_t tw, int64_t ty0, int64_t ty1,
            float* __restrict h, float* __restrict v, int64_t estride) {
  // Rows times B: h[(rp*4 + k)*hs + (m - ty0)*tw + tx] for row 2m + rp of P, m in
  // [ty0, ty1], from the four contiguous parity planes.
  const int64_t rows = ty1 - ty0 + 1, hs = rows * tw;
  for (int rp = 0; rp < 2; rp++) {
    const float* qe = q + (2 * rp) * qs;
    const float* qo = q + (2 * rp + 1) * qs;
    float* h0 = h + (rp * 4 + 0) * hs;
    float* h1 = h + (rp * 4 + 1) * hs;
    float* h2 = h + (rp * 4 + 2) * hs;
    float* h3 = h + (rp * 4 + 3) * hs;
    for (int64_t m = 0; m < rows; m++) {
      const float* e = qe + (ty0 + m) * ld;
      const float* o = qo + (ty0 + m) * ld;
      const int64_t base = m * tw;
      for (int64_t t = 0; t < tw; t++) {
        const float a = e[t], b = o[t], c = e[t + 1], d = o[t + 1];
        h0[base + t] = a - c;
        h1[base + t] = b + c;
        h2[base + t] = c - b;
        h3[base + t] = b - d;
      }
    }
  }
  // Bᵀ times that: tile (ty, tx) reads rows 2ty (even plane, m = ty), 2ty+1 (odd, ty),
  // 2ty+2 (even, ty+1), 2ty+3 (odd, ty+1): contiguous in j = (ty - ty0)*tw + tx.
  const int64_t n = (ty1 - ty0) * tw;
  for (int k = 0; k < 4; k++) {
    const float* he = h + k * hs;
    const float* ho = h + (4 + k) * hs;
    float* v0 = v + (0 * 4 + k) * estride;
    float* v1 = v + (1 * 4 + k) * estride;
    float* v2 = v + (2 * 4 + k) * estride;
    float* v3 = v + (3 * 4 + k) * estride;
    for (int64_t j = 0; j < n; j++) {
      const float d0 = he[j], d1 = ho[j], d2 = he[j + tw], d3 = ho[j + tw];
      v0[j] = d0 - d2;
      v1[j] = d1 + d2;
      v2[j] = d2 - d1;
      v3[j] = d1 - d3;
    }
  }
}

void winoInRows(const float* __restrict x, int64_t w, int64_t h, int64_t ty0, int64_t ty1, const float* zero,
                float* __restrict g, int64_t gs) {
  for (int64_t ty = ty0; ty < ty1; ty++) {
    // P rows 2ty..2ty+3 are image rows 2ty-1..2ty+2.
    const float* r[4];
    for (int i = 0; i < 4; i++) {
      const int64_t y = 2 * ty - 1 + i;
      r[i] = y >= 0 && y < h ? x + y * w : zero;
    }
    const float *a = r[0], *b = r[1], *c = r[2], *d = r[3];
    float* __restrict g0 = g + (ty - ty0) * w;
    float* __restrict g1 = g0 + gs;
    float* __restrict g2 = g0 + 2 * gs;
    float* __restrict g3 = g0 + 3 * gs;
#pragma GCC ivdep
    for (int64_t t = 0; t < w; t++) {
      g0[t] = a[t] - c[t];
      g1[t] = b[t] + c[t];
      g2[t] = c[t] - b[t];
      g3[t] = b[t] - d[t];
    }
  }
}

// Where tile t's entries go (Kernels::winoInCols): t, or with a panel stride, position t % NR
// of panel t / NR.
struct TileAt {
  int64_t pstride;
  int64_t operator()(int64_t t) const { return pstride ? t / NR * pstride + t % NR : t; }
};

// One loop over all n tiles but the call's first and last (its rows are contiguous in g:
// tile t reads 2t - 1 .. 2t + 2, so a row's end tiles read a value of the row before or
// after), a panel's run of tiles at a time, then the row ends put right: column -1 and
// column w are zero, and only v0 = a - c reads the first column, only v3 = b - d the last.
void winoInCols(const float* __restrict g, int64_t gs, int64_t tw, int64_t n, float* __restrict v, int64_t estride,
                int64_t pstride) {
  const TileAt at{pstride};
  const int64_t panel = pstride ? NR : n;
  for (int i = 0; i < 4; i++) {
    const float* __restrict s = g + i * gs;
    float* __restrict v0 = v + (i * 4 + 0) * estride;
    float* __restrict v1 = v + (i * 4 + 1) * estride;
    float* __restrict v2 = v + (i * 4 + 2) * estride;
    float* __restrict v3 = v + (i * 4 + 3) * estride;
    const auto put = [&](int64_t j, int64_t t) {
      const float a = s[2 * t - 1], b = s[2 * t], c = s[2 * t + 1], d = s[2 * t + 2];
      v0[j] = a - c;
      v1[j] = b + c;
      v2[j] = c - b;
      v3[j] = b - d;
    };
    for (int64_t p0 = 0; p0 < n; p0 += panel) {
      const int64_t o = at(p0) - p0;
      if (pstride && p0 > 0 && p0 + NR < n) {  // a whole panel inside the call: NR tiles
#pragma GCC ivdep
        for (int64_t t = p0; t < p0 + NR; t++) put(o + t, t);
      } else {
        const int64_t lo = p0 > 1 ? p0 : 1, hi = p0 + panel < n - 1 ? p0 + panel : n - 1;
#pragma GCC ivdep
        for (int64_t t = lo; t < hi; t++) put(o + t, t);
      }
    }
    for (int64_t t0 = 0; t0 < n; t0 += tw) {
      const int64_t t1 = t0 + tw - 1;
      v0[at(t0)] = 0.0f - s[2 * t0 + 1];
      v3[at(t1)] = s[2 * t1] - 0.0f;
    }
    // The call's first and last tiles' other entries (v0 of the last and v3 of the first
    // only when a row holds more than one tile).
    for (int64_t t = 0; t < n; t = t == 0 && n > 1 ? n - 1 : n) {
      const float b = s[2 * t], c = s[2 * t + 1];
      v1[at(t)] = b + c;
      v2[at(t)] = c - b;
      if (tw > 1 && t > 0) v0[at(t)] = s[2 * t - 1] - c;
      if (tw > 1 && t == 0) v3[at(t)] = b - s[2 * t + 2];
    }
  }
}

void winoOut(const float* __restrict m, int64_t estride, int64_t n, float* __restrict o) {
  float* __restrict o00 = o;
  float* __restrict o01 = o + n;
  float* __restrict o10 = o + 2 * n;
  float* __restrict o11 = o + 3 * n;
  // Aᵀ times M's columns, then times A, one tile per lane.
  for (int64_t t = 0; t < n; t++) {
    float s0[4], s1[4];
    for (int k = 0; k < 4; k++) {
      const float a = m[(0 * 4 + k) * estride + t], b = m[(1 * 4 + k) * estride + t];
      const float c = m[(2 * 4 + k) * estride + t], d = m[(3 * 4 + k) * estride + t];
      s0[k] = a + b + c;
      s1[k] = b - c - d;
    }
    o00[t] = s0[0] + s0[1] + s0[2];
    o01[t] = s0[1] - s0[2] - s0[3];
    o10[t] = s1[0] + s1[1] + s1[2];
    o11[t] = s1[1] - s1[2] - s1[3];
  }
}

// The value stored: the product (added to what y holds, with ACC), plus the bias (with
// BIAS), then max(0, ·) (with RELU; NaN stays NaN, as channelBiasAct's).
template <bool ACC, bool BIAS, bool RELU>
inline float wino_value(float old, float v, float bias) {
  float r = ACC ? old + v : v;
  if (BIAS) r += bias;
  if (RELU) r = r < 0.0f ? 0.0f : r;
  return r;
}

template <bool ACC, bool BIAS, bool RELU>
inline void wino_store(const float* __restrict a, const float* __restrict b, int64_t width, float* __restrict y,
                       float bias) {
  const int64_t full = width / 2;
  for (int64_t t = 0; t < full; t++) {
    y[2 * t] = wino_value<ACC, BIAS, RELU>(y[2 * t], a[t], bias);
    y[2 * t + 1] = wino_value<ACC, BIAS, RELU>(y[2 * t + 1], b[t], bias);
  }
  if (width & 1) y[2 * full] = wino_value<ACC, BIAS, RELU>(y[2 * full], a[full], bias);
}

// Calls F<ACC, BIAS, RELU>::run(args...) with the flags as template arguments.
template <template <bool, bool, bool> class F, typename... Args>
inline void with_store_flags(bool acc, bool bias, bool relu, Args... args) {
  const int k = (acc ? 4 : 0) + (bias ? 2 : 0) + (relu ? 1 : 0);
  switch (k) {
    case 0: F<false, false, false>::run(args...); break;
    case 1: F<false, false, true>::run(args...); break;
    case 2: F<false, true, false>::run(args...); break;
    case 3: F<false, true, true>::run(args...); break;
    case 4: F<true, false, false>::run(args...); break;
    case 5: F<true, false, true>::run(args...); break;
    case 6: F<true, true, false>::run(args...); break;
    default: F<true, true, true>::run(args...); break;
  }
}

template <bool ACC, bool BIAS, bool RELU>
struct WinoStore {
  static void run(const float* o, int64_t n, int64_t width, int64_t rows, float* y, float bias) {
    const int64_t tw = (width + 1) / 2;
    for (int64_t k = 0; k < rows; k++) {
      const float* a = o + 2 * (k & 1) * n + (k >> 1) * tw;
      wino_store<ACC, BIAS, RELU>(a, a + n, width, y + k * width, bias);
    }
  }
};

void winoStore(const float* o, int64_t n, int64_t width, int64_t rows, float* y, bool accumulate, const float* bias,
               bool relu) {
  with_store_flags<WinoStore>(accumulate, bias != nullptr, relu, o, n, width, rows, y, bias ? *bias : 0.0f);
}

// One pooling window's value and argmax from its four outputs w0..w3 (window order), each
// + bias when BIAS and then max(0, ·) when RELU: the first maximum, a NaN winning (the first
// NaN), as maxPool2d. Selects, not branches, so that the callers' loops vectorise.
template <bool BIAS, bool RELU>
inline void pool_window(float w0, float w1, float w2, float w3, float bias, float* __restrict best, uint8_t* __restrict at) {
  const float w[4] = {w0, w1, w2, w3};
  float b = wino_value<false, BIAS, RELU>(0.0f, w[0], bias);
  int32_t a = 0;
  for (int k = 1; k < 4; k++) {
    const float v = wino_value<false, BIAS, RELU>(0.0f, w[k], bias);
    const bool beats = v > b || (v != v && b == b);
    b = beats ? v : b;
    a = beats ? k : a;
  }
  *best = b;
  *at = (uint8_t)a;
}

// Pooled outputs always overwrite: ACC is there for with_store_flags and is never set.
template <bool ACC, bool BIAS, bool RELU>
struct WinoStorePool {
  // Windows t < count of four streams w0..w3 (window order).
  static void run4(const float* __restrict w0, const float* __restrict w1, const float* __restrict w2,
                   const float* __restrict w3, int64_t count, float* __restrict pooled, uint8_t* __restrict argmax,
                   float bias) {
    for (int64_t t = 0; t < count; t++) pool_window<BIAS, RELU>(w0[t], w1[t], w2[t], w3[t], bias, pooled + t, argmax + t);
  }
  static void run(const float* o, int64_t n, int64_t count, float* pooled, uint8_t* argmax, float bias) {
    run4(o, o + n, o + 2 * n, o + 3 * n, count, pooled, argmax, bias);
  }
};

void winoStorePool(const float* o, int64_t n, int64_t count, float* pooled, uint8_t* argmax, const float* bias,
                   bool relu) {
  with_store_flags<WinoStorePool>(false, bias != nullptr, relu, o, n, count, pooled, argmax, bias ? *bias : 0.0f);
}

// out[2x] = a[x], out[2x + 1] = b[x] for x < len, for the pooled values and their argmax
// bytes: eight (then four) at a time as GCC generic vectors, since the plain loop compiled
// to scalar code (a third of the pooled store's time on Conv-2's 8-tile rows).
typedef float pool_f4 __attribute__((vector_size(16)));
typedef float pool_f8 __attribute__((vector_size(32)));
typedef float pool_f16 __attribute__((vector_size(64)));
typedef uint8_t pool_u8x4 __attribute__((vector_size(4)));
typedef uint8_t pool_u8x8 __attribute__((vector_size(8)));
typedef uint8_t pool_u8x16 __attribute__((vector_size(16)));

// W = sizeof(F)/4 values of a and of b at x interleaved (Lanes: 0, W, 1, W + 1, ...), and
// their bytes likewise; F2 and U2 are twice F's and U's width.
template <class F, class F2, class U, class U2, int... Lanes>
inline void interleave_vectors(const float* __restrict a, const float* __restrict b, const uint8_t* __restrict ka,
                               const uint8_t* __restrict kb, int64_t x, float* __restrict out,
                               uint8_t* __restrict kout) {
  F va, vb;
  U ca, cb;
  __builtin_memcpy(&va, a + x, sizeof va);
  __builtin_memcpy(&vb, b + x, sizeof vb);
  __builtin_memcpy(&ca, ka + x, sizeof ca);
  __builtin_memcpy(&cb, kb + x, sizeof cb);
  const F2 v = __builtin_shufflevector(va, vb, Lanes...);
  const U2 c = __builtin_shufflevector(ca, cb, Lanes...);
  __builtin_memcpy(out + 2 * x, &v, sizeof v);
  __builtin_memcpy(kout + 2 * x, &c, sizeof c);
}

inline void interleave_pools(const float* __restrict a, const float* __restrict b, const uint8_t* __restrict ka,
                             const uint8_t* __restrict kb, int64_t len, float* __restrict out, uint8_t* __restrict kout) {
  int64_t x = 0;
  for (; x + 8 <= len; x += 8)
    interleave_vectors<pool_f8, pool_f16, pool_u8x8, pool_u8x16, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15>(
        a, b, ka, kb, x, out, kout);
  if (x + 4 <= len) {  // a 16x16 output's rows of four tiles
    interleave_vectors<pool_f4, pool_f8, pool_u8x4, pool_u8x8, 0, 4, 1, 5, 2, 6, 3, 7>(a, b, ka, kb, x, out, kout);
    x += 4;
  }
  for (; x < len; x++) {
    out[2 * x] = a[x];
    out[2 * x + 1] = b[x];
    kout[2 * x] = ka[x];
    kout[2 * x + 1] = kb[x];
  }
}

// 4x4 tiles, four windows each: window (pi, pj) of tile row r, tile x pools outputs
// (2pi + a, 2pj + b) in window order 2a + b to pooled row 2r + pi, column 2x + pj. Each of
// the four window positions is pooled over a run of tiles into a buffer (WinoStorePool's
// loop, which vectorises), then the buffers are interleaved into the pooled rows. A run
// is whole tile rows (whose tiles are consecutive in o) when a row fits in the buffer, so
// that rows of 8 tiles still fill the vector lanes; else part of one row.
template <bool ACC, bool BIAS, bool RELU>
struct WinoStorePool4 {
  static void run(const float* __restrict o, int64_t n, int64_t rows, int64_t tw, float* __restrict pooled,
                  uint8_t* __restrict argmax, float bias) {
    constexpr int64_t kRun = 256;
    float best[4][kRun];
    uint8_t at[4][kRun];
    const int64_t rowsPerRun = tw <= kRun ? kRun / tw : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += rowsPerRun) {
      const int64_t nr = min64(rowsPerRun, rows - r0);
      for (int64_t x0 = 0; x0 < tw; x0 += kRun) {
        const int64_t len = min64(kRun, tw - x0);  // each row's tiles in this run: all tw of them when nr > 1
        for (int w = 0; w < 4; w++) {
          // Window position w = 2pi + pj starts at output (2pi, 2pj); the others follow in window order.
          const float* s = o + (8 * (w >> 1) + 2 * (w & 1)) * n + r0 * tw + x0;
          WinoStorePool<false, BIAS, RELU>::run4(s, s + n, s + 4 * n, s + 5 * n, nr * len, best[w], at[w], bias);
        }
        for (int64_t r = 0; r < nr; r++)
          for (int pi = 0; pi < 2; pi++) {
            const int64_t row = (2 * (r0 + r) + pi) * 2 * tw + 2 * x0;
            const float* __restrict b0 = best[2 * pi] + r * len;
            const float* __restrict b1 = best[2 * pi + 1] + r * len;
            const uint8_t* __restrict a0 = at[2 * pi] + r * len;
            const uint8_t* __restrict a1 = at[2 * pi + 1] + r * len;
            interleave_pools(b0, b1, a0, a1, len, pooled + row, argmax + row);
          }
      }
    }
  }
};

void winoStorePool4(const float* o, int64_t n, int64_t rows, int64_t tw, float* pooled, uint8_t* argmax,
                    const float* bias, bool relu) {
  with_store_flags<WinoStorePool4>(false, bias != nullptr, relu, o, n, rows, tw, pooled, argmax, bias ? *bias : 0.0f);
}

// a[k] = s[2k] for 2k < n, b[k] = s[2k + 1] for 2k + 1 < n.
inline void wino_split(const float* __restrict s, int64_t n, float* __restrict a, float* __restrict b) {
  const int64_t half = n / 2;
  for (int64_t k = 0; k < half; k++) {
    a[k] = s[2 * k];
    b[k] = s[2 * k + 1];
  }
  if (n & 1) a[half] = s[n - 1];
}

void winoSplitRows(const float* s, int64_t sstride, int64_t n, int64_t rows, int64_t ry, int64_t rc, float* q,
                   int64_t qs, int64_t ld) {
  for (int64_t y = 0; y < rows; y++) {
    const int64_t py = y + ry;
    float* row = q + 2 * (py & 1) * qs + (py >> 1) * ld;
    wino_split(s + y * sstride, n, row + (rc & 1) * qs + (rc >> 1), row + ((rc + 1) & 1) * qs + ((rc + 1) >> 1));
  }
}

template <int R>
inline void wino_grad_row(const float* __restrict p, const float* __restrict q, int64_t n, float* __restrict g,
                          int64_t estride) {
  float* __restrict g0 = g + (R * 4 + 0) * estride;
  float* __restrict g1 = g + (R * 4 + 1) * estride;
  float* __restrict g2 = g + (R * 4 + 2) * estride;
  float* __restrict g3 = g + (R * 4 + 3) * estride;
  for (int64_t t = 0; t < n; t++) {
    g0[t] = p[t];
    g1[t] = p[t] + q[t];
    g2[t] = p[t] - q[t];
    g3[t] = -q[t];
  }
}

void winoGradOut(const float* __restrict a, const float* __restrict b, const float* __restrict c,
                 const float* __restrict d, int64_t n, float* __restrict g, int64_t estride) {
  // Rows of A·g: (a, b), (a + c, b + d), (a - c, b - d), (-c, -d); each row (p, q) times
  // Aᵀ: (p, p + q, p - q, -q). Rows 1-3 go through a chunk buffer, so that every loop is a
  // plain contiguous one.
  constexpr int64_t kChunk = 256;
  float p[kChunk], q[kChunk];
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
    const int64_t m = min64(kChunk, n - t0);
    const float *at = a + t0, *bt = b + t0, *ct = c + t0, *dt = d + t0;
    float* gt = g + t0;
    wino_grad_row<0>(at, bt, m, gt, estride);
    for (int64_t t = 0; t < m; t++) {
      p[t] = at[t] + ct[t];
      q[t] = bt[t] + dt[t];
    }
    wino_grad_row<1>(p, q, m, gt, estride);
    for (int64_t t = 0; t < m; t++) {
      p[t] = at[t] - ct[t];
      q[t] = bt[t] - dt[t];
    }
    wino_grad_row<2>(p, q, m, gt, estride);
    for (int64_t t = 0; t < m; t++) {
      p[t] = -ct[t];
      q[t] = -dt[t];
    }
    wino_grad_row<3>(p, q, m, gt, estride);
  }
}

// winoGradOut on whole rows (outputs a whole number of 2x2 tiles): the row pairs of
// rows tile rows combined (A·g, the order winoGradOut adds in), then each row's columns,
// one loop over all n tiles.
void winoGradOutRows(const float* __restrict y, int64_t ow, int64_t rows, float* __restrict g, int64_t gs) {
  for (int64_t r = 0; r < rows; r++) {
    const float* __restrict p = y + 2 * r * ow;
    const float* __restrict q = p + ow;
    float* __restrict g0 = g + r * ow;
    float* __restrict g1 = g0 + gs;
    float* __restrict g2 = g0 + 2 * gs;
    float* __restrict g3 = g0 + 3 * gs;
#pragma GCC ivdep
    for (int64_t c = 0; c < ow; c++) {
      g0[c] = p[c];
      g1[c] = p[c] + q[c];
      g2[c] = p[c] - q[c];
      g3[c] = -q[c];
    }
  }
}

void winoGradOutCols(const float* __restrict g, int64_t gs, int64_t n, float* __restrict out, int64_t estride) {
  for (int k = 0; k < 4; k++) {
    const float* __restrict s = g + k * gs;
    float* __restrict o0 = out + (k * 4 + 0) * estride;
    float* __restrict o1 = out + (k * 4 + 1) * estride;
    float* __restrict o2 = out + (k * 4 + 2) * estride;
    float* __restrict o3 = out + (k * 4 + 3) * estride;
#pragma GCC ivdep
    for (int64_t t = 0; t < n; t++) {
      const float a = s[2 * t], b = s[2 * t + 1];
      o0[t] = a;
      o1[t] = a + b;
      o2[t] = a - b;
      o3[t] = -b;
    }
  }
}

// ---------------------------------------------------------------- Winograd F(4x4, 3x3)
//
// The points 0, ±1, ±2 and ∞ (Lavin & Gray):
//   Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
//   Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
// As for F(2x2, 3x3), every pass is a loop over tiles, contiguous in memory. The loops
// touch more planes than GCC will check for overlap at run time (it would then not
// vectorise them); the planes are disjoint, which ivdep tells it.

// t = Bᵀ·d for a 6-vector d.
#define LTH_WINO4_BT(d0, d1, d2, d3, d4, d5, t0, t1, t2, t3, t4, t5) \
  do {                                                               \
    t0 = 4.0f * d0 - 5.0f * d2 + d4;                                 \
    t1 = (d4 + d3) - 4.0f * (d1 + d2);                               \
    t2 = (d4 - d3) + 4.0f * (d1 - d2);                               \
    t3 = (d4 - d2) + 2.0f * (d3 - d1);                               \
    t4 = (d4 - d2) - 2.0f * (d3 - d1);                               \
    t5 = 4.0f * d1 - 5.0f * d3 + d5;                                 \
  } while (0)

// o[i*os + j] = (Bᵀ·d)_i for d = (d0[j], ..., d5[j]), j < n: Bᵀ over six input streams into
// six output streams os floats apart (disjoint from the inputs).
inline void wino4_bt_streams(const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                             const float* __restrict d3, const float* __restrict d4, const float* __restrict d5,
                             int64_t n, float* o, int64_t os) {
  float* __restrict o0 = o;
  float* __restrict o1 = o + os;
  float* __restrict o2 = o + 2 * os;
  float* __restrict o3 = o + 3 * os;
  float* __restrict o4 = o + 4 * os;
  float* __restrict o5 = o + 5 * os;
#pragma GCC ivdep
  for (int64_t j = 0; j < n; j++) {
    float t0, t1, t2, t3, t4, t5;
    LTH_WINO4_BT(d0[j], d1[j], d2[j], d3[j], d4[j], d5[j], t0, t1, t2, t3, t4, t5);
    o0[j] = t0;
    o1[j] = t1;
    o2[j] = t2;
    o3[j] = t3;
    o4[j] = t4;
    o5[j] = t5;
  }
}

void winoIn4(const float* __restrict q, int64_t qs, int64_t ld, int64_t tw, int64_t ty0, int64_t ty1,
             float* __restrict h, float* __restrict v, int64_t estride) {
  // Rows times B: h[(rp*6 + k)*hs + (m - ty0)*tw + tx] for row 4m + rp of P, m in
  // [ty0, ty1] (rows 4ty1 + 2 and 4ty1 + 3 are not read), from the 16 phase planes.
  const int64_t rows = ty1 - ty0 + 1, hs = rows * tw;
  for (int rp = 0; rp < 4; rp++) {
    const float* q0 = q + (4 * rp + 0) * qs;
    const float* q1 = q + (4 * rp + 1) * qs;
    const float* q2 = q + (4 * rp + 2) * qs;
    const float* q3 = q + (4 * rp + 3) * qs;
    const int64_t mrows = rp < 2 ? rows : rows - 1;
    for (int64_t m = 0; m < mrows; m++) {
      const int64_t off = (ty0 + m) * ld;
      wino4_bt_streams(q0 + off, q1 + off, q2 + off, q3 + off, q0 + off + 1, q1 + off + 1, tw, h + rp * 6 * hs + m * tw, hs);
    }
  }
  // Bᵀ times that: tile (ty, tx) reads rows 4ty + r (phase r, m = ty) for r < 4 and
  // 4ty + 4, 4ty + 5 (phases 0 and 1, m = ty + 1): contiguous in j = (ty - ty0)*tw + tx.
  const int64_t n = (ty1 - ty0) * tw;
  for (int k = 0; k < 6; k++) {
    const float* r0 = h + (0 * 6 + k) * hs;
    const float* r1 = h + (1 * 6 + k) * hs;
    const float* r2 = h + (2 * 6 + k) * hs;
    const float* r3 = h + (3 * 6 + k) * hs;
    wino4_bt_streams(r0, r1, r2, r3, r0 + tw, r1 + tw, n, v + k * estride, 6 * estride);
  }
}

// winoIn4 without the phase split, as winoInRows/winoInCols are winoIn's (padding 1,
// width w = 4*tw): tile row ty reads image rows 4ty-1..4ty+4, tile t reads g[4t-1..4t+4].
void winoIn4Rows(const float* __restrict x, int64_t w, int64_t h, int64_t ty0, int64_t ty1, const float* zero,
                 float* __restrict g, int64_t gs) {
  for (int64_t ty = ty0; ty < ty1; ty++) {
    const float* r[6];
    for (int i = 0; i < 6; i++) {
      const int64_t y = 4 * ty - 1 + i;
      r[i] = y >= 0 && y < h ? x + y * w : zero;
    }
    wino4_bt_streams(r[0], r[1], r[2], r[3], r[4], r[5], w, g + (ty - ty0) * w, gs);
  }
}

void winoIn4Cols(const float* __restrict g, int64_t gs, int64_t tw, int64_t n, float* __restrict v, int64_t estride) {
  // A chunk of tiles at a time, each of the six columns a tile reads first gathered into
  // a contiguous buffer d[k] (d[k][j] = column 4t - 1 + k of tile t = t0 + j), so that the
  // transform runs on unit-stride loads over every tile alike. Columns 4t .. 4t+3 are the
  // tile's own; 4t - 1 is the previous tile's last and 4t + 4 the next one's first, except
  // at the ends of a tile row, where the padding's zero stands (the call's first and last
  // tiles are such ends, so nothing outside g is read).
  constexpr int64_t kChunk = 128;
  float d[6][kChunk];
  for (int i = 0; i < 6; i++) {
    const float* __restrict s = g + i * gs;
    float* vi = v + i * 6 * estride;
    for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
      const int64_t m = min64(kChunk, n - t0);
      const float* __restrict c = s + 4 * t0;
      for (int64_t j = 0; j < m; j++) {
        d[1][j] = c[4 * j];
        d[2][j] = c[4 * j + 1];
        d[3][j] = c[4 * j + 2];
        d[4][j] = c[4 * j + 3];
      }
      d[0][0] = t0 % tw == 0 ? 0.0f : c[-1];
      for (int64_t j = 1; j < m; j++) d[0][j] = d[4][j - 1];
      for (int64_t j = 0; j + 1 < m; j++) d[5][j] = d[1][j + 1];
      d[5][m - 1] = (t0 + m) % tw == 0 || t0 + m == n ? 0.0f : c[4 * m];
      for (int64_t r = (t0 + tw - 1) / tw * tw; r < t0 + m; r += tw) {  // tile rows that start in the chunk
        d[0][r - t0] = 0.0f;
        if (r > t0) d[5][r - t0 - 1] = 0.0f;
      }
      wino4_bt_streams(d[0], d[1], d[2], d[3], d[4], d[5], m, vi + t0, estride);
    }
  }
}
#undef LTH_WINO4_BT

void winoOut4(const float* __restrict m, int64_t estride, int64_t n, float* __restrict o) {
  // Aᵀ times M's columns, then times A, one tile per lane.
#pragma GCC ivdep
  for (int64_t t = 0; t < n; t++) {
    float s[4][6];
    for (int k = 0; k < 6; k++) {
      const float m0 = m[(0 * 6 + k) * estride + t], m1 = m[(1 * 6 + k) * estride + t];
      const float m2 = m[(2 * 6 + k) * estride + t], m3 = m[(3 * 6 + k) * estride + t];
      const float m4 = m[(4 * 6 + k) * estride + t], m5 = m[(5 * 6 + k) * estride + t];
      const float ap = m1 + m2, am = m1 - m2, bp = m3 + m4, bm = m3 - m4;
      s[0][k] = m0 + ap + bp;
      s[1][k] = am + 2.0f * bm;
      s[2][k] = ap + 4.0f * bp;
      s[3][k] = am + 8.0f * bm + m5;
    }
    for (int i = 0; i < 4; i++) {
      const float ap = s[i][1] + s[i][2], am = s[i][1] - s[i][2], bp = s[i][3] + s[i][4], bm = s[i][3] - s[i][4];
      o[(i * 4 + 0) * n + t] = s[i][0] + ap + bp;
      o[(i * 4 + 1) * n + t] = am + 2.0f * bm;
      o[(i * 4 + 2) * n + t] = ap + 4.0f * bp;
      o[(i * 4 + 3) * n + t] = am + 8.0f * bm + s[i][5];
    }
  }
}

template <bool ACC, bool BIAS, bool RELU>
inline void wino_store4(const float* __restrict a, int64_t n, int64_t width, float* __restrict y, float bias) {
  const float* __restrict a0 = a;
  const float* __restrict a1 = a + n;
  const float* __restrict a2 = a + 2 * n;
  const float* __restrict a3 = a + 3 * n;
  const int64_t full = width / 4;
  for (int64_t t = 0; t < full; t++) {
    y[4 * t] = wino_value<ACC, BIAS, RELU>(y[4 * t], a0[t], bias);
    y[4 * t + 1] = wino_value<ACC, BIAS, RELU>(y[4 * t + 1], a1[t], bias);
    y[4 * t + 2] = wino_value<ACC, BIAS, RELU>(y[4 * t + 2], a2[t], bias);
    y[4 * t + 3] = wino_value<ACC, BIAS, RELU>(y[4 * t + 3], a3[t], bias);
  }
  for (int64_t c = 4 * full; c < width; c++) y[c] = wino_value<ACC, BIAS, RELU>(y[c], a[(c - 4 * full) * n + full], bias);
}

template <bool ACC, bool BIAS, bool RELU>
struct WinoStore4 {
  static void run(const float* o, int64_t n, int64_t width, int64_t rows, float* y, float bias) {
    const int64_t tw = (width + 3) / 4;
    for (int64_t k = 0; k < rows; k++)
      wino_store4<ACC, BIAS, RELU>(o + 4 * (k & 3) * n + (k >> 2) * tw, n, width, y + k * width, bias);
  }
};

void winoStore4(const float* o, int64_t n, int64_t width, int64_t rows, float* y, bool accumulate, const float* bias,
                bool relu) {
  with_store_flags<WinoStore4>(accumulate, bias != nullptr, relu, o, n, width, rows, y, bias ? *bias : 0.0f);
}

// d[r*ds + k] = s[4k + r] for 4k + r < n.
inline void wino_split4(const float* __restrict s, int64_t n, float* __restrict d0, float* __restrict d1,
                        float* __restrict d2, float* __restrict d3) {
  const int64_t full = n / 4;
  for (int64_t k = 0; k < full; k++) {
    d0[k] = s[4 * k];
    d1[k] = s[4 * k + 1];
    d2[k] = s[4 * k + 2];
    d3[k] = s[4 * k + 3];
  }
  float* d[4] = {d0, d1, d2, d3};
  for (int64_t c = 4 * full; c < n; c++) d[c - 4 * full][full] = s[c];
}

void winoSplitRows4(const float* s, int64_t sstride, int64_t n, int64_t rows, int64_t ry, int64_t rc, float* q,
                    int64_t qs, int64_t ld) {
  for (int64_t y = 0; y < rows; y++) {
    const int64_t py = y + ry;
    float* row = q + 4 * (py & 3) * qs + (py >> 2) * ld;
    wino_split4(s + y * sstride, n, row + ((rc + 0) & 3) * qs + ((rc + 0) >> 2), row + ((rc + 1) & 3) * qs + ((rc + 1) >> 2),
                row + ((rc + 2) & 3) * qs + ((rc + 2) >> 2), row + ((rc + 3) & 3) * qs + ((rc + 3) >> 2));
  }
}

void winoGradOut4(const float* __restrict r, int64_t n, float* __restrict g, int64_t estride) {
  // g = A·y·Aᵀ, A = (Aᵀ)ᵀ: a 4-vector p times Aᵀ is (p0, p0+p1+p2+p3, p0-p1+p2-p3,
  // p0+2p1+4p2+8p3, p0-2p1+4p2-8p3, p3). Rows of y·Aᵀ go through a chunk buffer.
  constexpr int64_t kChunk = 128;
  float t[4][6][kChunk];
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
    const int64_t m = min64(kChunk, n - t0);
    for (int i = 0; i < 4; i++) {
      const float* __restrict p0 = r + (i * 4 + 0) * n + t0;
      const float* __restrict p1 = r + (i * 4 + 1) * n + t0;
      const float* __restrict p2 = r + (i * 4 + 2) * n + t0;
      const float* __restrict p3 = r + (i * 4 + 3) * n + t0;
#pragma GCC ivdep
      for (int64_t k = 0; k < m; k++) {
        const float ep = p0[k] + p2[k], op = p1[k] + p3[k], e4 = p0[k] + 4.0f * p2[k], o4 = 2.0f * p1[k] + 8.0f * p3[k];
        t[i][0][k] = p0[k];
        t[i][1][k] = ep + op;
        t[i][2][k] = ep - op;
        t[i][3][k] = e4 + o4;
        t[i][4][k] = e4 - o4;
        t[i][5][k] = p3[k];
      }
    }
    for (int c = 0; c < 6; c++) {
      float* __restrict g0 = g + (0 * 6 + c) * estride + t0;
      float* __restrict g1 = g + (1 * 6 + c) * estride + t0;
      float* __restrict g2 = g + (2 * 6 + c) * estride + t0;
      float* __restrict g3 = g + (3 * 6 + c) * estride + t0;
      float* __restrict g4 = g + (4 * 6 + c) * estride + t0;
      float* __restrict g5 = g + (5 * 6 + c) * estride + t0;
#pragma GCC ivdep
      for (int64_t k = 0; k < m; k++) {
        const float a0 = t[0][c][k], a1 = t[1][c][k], a2 = t[2][c][k], a3 = t[3][c][k];
        const float ep = a0 + a2, op = a1 + a3, e4 = a0 + 4.0f * a2, o4 = 2.0f * a1 + 8.0f * a3;
        g0[k] = a0;
        g1[k] = ep + op;
        g2[k] = ep - op;
        g3[k] = e4 + o4;
        g4[k] = e4 - o4;
        g5[k] = a3;
      }
    }
  }
}

// winoGradOut4 on whole rows (outputs a whole number of 4x4 tiles), rows first: A·y per
// tile row (6 rows of ow), then each of those rows' columns, one loop over all n tiles.
// A 4-vector p times Aᵀ as in winoGradOut4.
#define LTH_WINO4_AT(p0, p1, p2, p3, t0, t1, t2, t3, t4, t5)              \
  do {                                                                   \
    const float ep = p0 + p2, op = p1 + p3, e4 = p0 + 4.0f * p2, o4 = 2.0f * p1 + 8.0f * p3; \
    t0 = p0;                                                             \
    t1 = ep + op;                                                        \
    t2 = ep - op;                                                        \
    t3 = e4 + o4;                                                        \
    t4 = e4 - o4;                                                        \
    t5 = p3;                                                             \
  } while (0)

void winoGradOut4Rows(const float* __restrict y, int64_t ow, int64_t rows, float* __restrict g, int64_t gs) {
  for (int64_t r = 0; r < rows; r++) {
    const float* __restrict p0 = y + 4 * r * ow;
    const float* __restrict p1 = p0 + ow;
    const float* __restrict p2 = p0 + 2 * ow;
    const float* __restrict p3 = p0 + 3 * ow;
    float* g0 = g + r * ow;
    float* g1 = g0 + gs;
    float* g2 = g0 + 2 * gs;
    float* g3 = g0 + 3 * gs;
    float* g4 = g0 + 4 * gs;
    float* g5 = g0 + 5 * gs;
#pragma GCC ivdep
    for (int64_t c = 0; c < ow; c++) {
      float t0, t1, t2, t3, t4, t5;
      LTH_WINO4_AT(p0[c], p1[c], p2[c], p3[c], t0, t1, t2, t3, t4, t5);
      g0[c] = t0;
      g1[c] = t1;
      g2[c] = t2;
      g3[c] = t3;
      g4[c] = t4;
      g5[c] = t5;
    }
  }
}

void winoGradOut4Cols(const float* __restrict g, int64_t gs, int64_t n, float* __restrict out, int64_t estride) {
  for (int k = 0; k < 6; k++) {
    const float* __restrict s = g + k * gs;
    float* o0 = out + (k * 6 + 0) * estride;
    float* o1 = out + (k * 6 + 1) * estride;
    float* o2 = out + (k * 6 + 2) * estride;
    float* o3 = out + (k * 6 + 3) * estride;
    float* o4 = out + (k * 6 + 4) * estride;
    float* o5 = out + (k * 6 + 5) * estride;
#pragma GCC ivdep
    for (int64_t t = 0; t < n; t++) {
      float t0, t1, t2, t3, t4, t5;
      LTH_WINO4_AT(s[4 * t], s[4 * t + 1], s[4 * t + 2], s[4 * t + 3], t0, t1, t2, t3, t4, t5);
      o0[t] = t0;
      o1[t] = t1;
      o2[t] = t2;
      o3[t] = t3;
      o4[t] = t4;
      o5[t] = t5;
    }
  }
}
#undef LTH_WINO4_AT

#ifndef LTH_GEMM_NT
#define LTH_GEMM_NT gemm
bool nt_faster(int64_t, int64_t, int64_t) { return false; }
#endif

const lth::Kernels kTable = {
    kIsaName, MR, NR, kScratchFloats, gemm, biasAct, reluBackward, rowBiasAct, mask_by_bits, sumRows, adam, sgd, applyMask, winoIn, winoInRows, winoInCols, winoOut, winoStore, winoStorePool, winoSplitRows, winoGradOut, winoGradOutRows, winoGradOutCols,
    winoIn4, winoIn4Rows, winoIn4Cols, winoOut4, winoStore4, winoStorePool4, winoSplitRows4, winoGradOut4, winoGradOut4Rows, winoGradOut4Cols, LTH_GEMM_NT, nt_faster, packA, packB, WINO4_NARROW_TILES,
    kReadsAInPlace,
};
