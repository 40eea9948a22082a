// AVX2+FMA kernels: a 6x16 GEMM micro-kernel (12 ymm accumulators). Compiled with
// -mavx2 -mfma (binding.gyp) and only called when the CPU has AVX2 and FMA.
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace {

constexpr const char* kIsaName = "avx2";
constexpr int MR = 6;
constexpr int NR = 16;
constexpr int64_t KCMAX = 400;
constexpr int64_t NCMAX = 512;
constexpr int64_t WINO4_NARROW_TILES = 64;  // as for more channels (measured on AVX2: docs/performance.md)

#include "kernels_common.h"
#include "transpose_avx.h"

// dst[c*stride + r] = src[r*ld + c] for r < rows, 0 for rows <= r < stride.
inline void pack_transpose(const float* __restrict src, int64_t ld, int rows, int64_t cols, float* __restrict dst,
                           int stride) {
  pack_transpose_rows_avx(src, ld, 0, rows, cols, dst, stride);
  pack_zero_pad(rows, cols, dst, stride);
}

// C[0:mr, 0:nr] (+)= sum_p A[p*6 + i] * B[p*ldb + j], or with STRIDED A[i*lda + p] (A's
// rows in place, unpacked: the same multiply-adds in the same order). With HALF only the
// first 8 columns are computed (edge panels with nr <= 8), and only the first ROWS rows
// (2, 4 or 6, at least mr: 64 rows end in a panel of 4, 16 and 32 rows in 4 and 2, where
// a full panel's multiply-adds would be up to a tenth of the product); each element's FMA
// chain is the same either way.
template <int ROWS, bool HALF, bool STRIDED>
inline void micro_kernel_6x16(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                              float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  __m256 c0a = _mm256_setzero_ps(), c0b = _mm256_setzero_ps();
  __m256 c1a = _mm256_setzero_ps(), c1b = _mm256_setzero_ps();
  __m256 c2a = _mm256_setzero_ps(), c2b = _mm256_setzero_ps();
  __m256 c3a = _mm256_setzero_ps(), c3b = _mm256_setzero_ps();
  __m256 c4a = _mm256_setzero_ps(), c4b = _mm256_setzero_ps();
  __m256 c5a = _mm256_setzero_ps(), c5b = _mm256_setzero_ps();
#define LTH_ROW_AT(i, at)                                  \
  if (i < ROWS) {                                          \
    const __m256 a = _mm256_broadcast_ss(at);              \
    c##i##a = _mm256_fmadd_ps(a, b0, c##i##a);             \
    if (!HALF) c##i##b = _mm256_fmadd_ps(a, b1, c##i##b);  \
  }
  if (!STRIDED) {
#define LTH_ROW(i) LTH_ROW_AT(i, A + i)
    for (int64_t p = 0; p < kc; p++) {
      const __m256 b0 = _mm256_loadu_ps(B);
      const __m256 b1 = HALF ? b0 : _mm256_loadu_ps(B + 8);
      LTH_ROW(0) LTH_ROW(1) LTH_ROW(2) LTH_ROW(3) LTH_ROW(4) LTH_ROW(5)
      A += MR;
      B += ldb;
    }
#undef LTH_ROW
  } else {
    // Row i at A + i*lda: two row pointers, the rows after them at 1, 2 and 3 lda.
    const float* __restrict a4 = A + 4 * lda;
    const int64_t l2 = 2 * lda, l3 = 3 * lda;
#define LTH_ROW(i) LTH_ROW_AT(i, (i < 4 ? A : a4) + ((i % 4) == 0 ? 0 : (i % 4) == 1 ? lda : (i % 4) == 2 ? l2 : l3))
    for (int64_t p = 0; p < kc; p++) {
      const __m256 b0 = _mm256_loadu_ps(B);
      const __m256 b1 = HALF ? b0 : _mm256_loadu_ps(B + 8);
      LTH_ROW(0) LTH_ROW(1) LTH_ROW(2) LTH_ROW(3) LTH_ROW(4) LTH_ROW(5)
      A++;
      a4++;
      B += ldb;
    }
#undef LTH_ROW
  }
#undef LTH_ROW_AT
  if (nr == NR) {
#define LTH_STORE(i)                                                               \
  if (i < ROWS && i < mr) {                                                                  \
    float* cr = C + i * ldc;                                                       \
    if (add) {                                                                     \
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), c##i##a));           \
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), c##i##b));   \
    } else {                                                                       \
      _mm256_storeu_ps(cr, c##i##a);                                               \
      _mm256_storeu_ps(cr + 8, c##i##b);                                           \
    }                                                                              \
  }
    LTH_STORE(0) LTH_STORE(1) LTH_STORE(2) LTH_STORE(3) LTH_STORE(4) LTH_STORE(5)
#undef LTH_STORE
  } else {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
    const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
#define LTH_STORE(i)                                                                        \
  if (i < ROWS && i < mr) {                                                                           \
    float* cr = C + i * ldc;                                                                \
    if (add) {                                                                              \
      _mm256_maskstore_ps(cr, k0, _mm256_add_ps(_mm256_maskload_ps(cr, k0), c##i##a));      \
      if (!HALF) _mm256_maskstore_ps(cr + 8, k1, _mm256_add_ps(_mm256_maskload_ps(cr + 8, k1), c##i##b)); \
    } else {                                                                                \
      _mm256_maskstore_ps(cr, k0, c##i##a);                                                 \
      if (!HALF) _mm256_maskstore_ps(cr + 8, k1, c##i##b);                                  \
    }                                                                                       \
  }
    LTH_STORE(0) LTH_STORE(1) LTH_STORE(2) LTH_STORE(3) LTH_STORE(4) LTH_STORE(5)
#undef LTH_STORE
  }
}

template <int ROWS, bool STRIDED>
inline void micro_kernel_rows(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                              float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  if (nr > 8)
    micro_kernel_6x16<ROWS, false, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else
    micro_kernel_6x16<ROWS, true, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
}

// The driver may pass op(A) unpacked where it is A's rows (kernels_impl.h).
constexpr bool kReadsAInPlace = true;

// 8 values' bits a compare: one byte.
void relu_bits(const float* y, uint8_t* bits, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    bits[k >> 3] = (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + k), zero, _CMP_GT_OQ));  // false for NaN
  relu_bits_from(y, bits, k, n);
}

// A byte's bits spread over eight lanes: lane i all ones where bit i is set.
void mask_by_bits(const float* g, const uint8_t* bits, float* out, int64_t n) {
  const __m256i lanes = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256i b = _mm256_and_si256(_mm256_set1_epi32(bits[k >> 3]), lanes);
    const __m256 m = _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, lanes));
    _mm256_storeu_ps(out + k, _mm256_and_ps(m, _mm256_loadu_ps(g + k)));
  }
  mask_by_bits_from(g, bits, out, k, n);
}

// Rows of A the kernel reads for a panel of mr rows: 2, 4 or 6.
constexpr int kernel_rows(int mr) { return mr > 4 ? 6 : mr > 2 ? 4 : 2; }

// A packed (lda 0: A[p*MR + i]) or read in place (A[i*lda + p], only where mr is
// kernel_rows(mr), so that every row read is one of op(A)'s).
template <bool STRIDED>
inline void micro_kernel_t(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                           float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  const int rows = kernel_rows(mr);
  if (rows == 6)
    micro_kernel_rows<6, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else if (rows == 4)
    micro_kernel_rows<4, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else
    micro_kernel_rows<2, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
}

inline void micro_kernel(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                         float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  if (lda)
    micro_kernel_t<true>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else
    micro_kernel_t<false>(kc, A, 0, B, ldb, C, ldc, mr, nr, add);
}

// C[i*n + j] (+)= Σ_p A[i*k + p]·B[j*k + p] for i in [r0, r1), j in [c0, c1): gemm with
// transB (not transA), both operands read along k as stored, no packing. A block of 4 x 3
// elements of C keeps one accumulator of 8 lanes each (lane l sums the terms p ≡ l mod 8,
// the last partial vector loaded with zeros past k), each then summed across its lanes in a
// fixed order. A block at the edge reads its missing rows and columns again from the last
// one and drops them, so every element goes through the same instructions wherever its
// block falls.
void gemm_nt(const lth::GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float*) {
  // 12 accumulators, 4 rows' vectors and a column's: one more than the 16 ymm, so each
  // FMA of one column reads its vector from L1.
  constexpr int R = 4, Cn = 3;
  const int64_t k = g.k, n = g.n, full = k & ~(int64_t)7;
  if (k == 0) return empty_product(g, r0, r1, c0, c1);
  const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k & 7)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t i0 = r0; i0 < r1; i0 += R) {
    const float* a[R];
    for (int r = 0; r < R; r++) a[r] = g.a + (i0 + r < r1 ? i0 + r : r1 - 1) * k;
    for (int64_t j0 = c0; j0 < c1; j0 += Cn) {
      const float* b[Cn];
      for (int c = 0; c < Cn; c++) b[c] = g.b + (j0 + c < c1 ? j0 + c : c1 - 1) * k;
      __m256 s[R][Cn];
      for (int r = 0; r < R; r++)
        for (int c = 0; c < Cn; c++) s[r][c] = _mm256_setzero_ps();
      for (int64_t p = 0; p < full; p += 8) {
        __m256 av[R];
        for (int r = 0; r < R; r++) av[r] = _mm256_loadu_ps(a[r] + p);
        for (int c = 0; c < Cn; c++) {
          const __m256 bv = _mm256_loadu_ps(b[c] + p);
          for (int r = 0; r < R; r++) s[r][c] = _mm256_fmadd_ps(av[r], bv, s[r][c]);
        }
      }
      if (k & 7) {
        __m256 av[R];
        for (int r = 0; r < R; r++) av[r] = _mm256_maskload_ps(a[r] + full, tail);
        for (int c = 0; c < Cn; c++) {
          const __m256 bv = _mm256_maskload_ps(b[c] + full, tail);
          for (int r = 0; r < R; r++) s[r][c] = _mm256_fmadd_ps(av[r], bv, s[r][c]);
        }
      }
      for (int r = 0; r < R && i0 + r < r1; r++)
        for (int c = 0; c < Cn && j0 + c < c1; c++) {
          __m128 x = _mm_add_ps(_mm256_castps256_ps128(s[r][c]), _mm256_extractf128_ps(s[r][c], 1));
          x = _mm_add_ps(x, _mm_movehl_ps(x, x));
          x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
          float* out = g.c + (i0 + r) * n + j0 + c;
          const float v = _mm_cvtss_f32(x);
          *out = g.accumulate ? *out + v : v;
        }
    }
  }
}
#define LTH_GEMM_NT gemm_nt

// gemm packs both operands, k*(m + n) floats, and gemm_nt sums each of the m*n lane
// vectors at the end and loads more per product: gemm_nt wins where 1/m + 1/n, packing's
// share, passes 1/100 + 2.4/k. Fitted to weight gradients on a Zen 4 (docs/performance.md):
// gemm_nt took 0.61-0.71 of gemm's time for first layers (n = 27, k = 1024), 0.78-0.89 for
// Winograd's 16- and 32-channel products (k = T, 30-455), 1.02 for 64 channels and 1.23
// for 128, and 1.20 for a 1x1 shortcut's 64 x 32 over k = 64.
bool nt_faster(int64_t m, int64_t n, int64_t k) { return 100.0 * k * (m + n) > (double)(k + 240) * m * n; }

#include "kernels_impl.h"

}  // namespace

const lth::Kernels* lth::get_kernels_avx2() { return &kTable; }

#else

const lth::Kernels* lth::get_kernels_avx2() { return nullptr; }

#endif
