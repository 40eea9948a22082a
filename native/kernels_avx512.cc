// AVX-512F kernels: a 12x32 GEMM micro-kernel (24 zmm accumulators). Compiled with
// -mavx512f -mavx2 -mfma (binding.gyp) and only called when the CPU has AVX512F.
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace {

constexpr const char* kIsaName = "avx512";
constexpr int MR = 12;
constexpr int NR = 32;
constexpr int64_t KCMAX = 400;  // A panel 12 x 400 floats = 19 KB stays in L1
constexpr int64_t NCMAX = 512;
// 128: F(4x4) input gradients of 16 to 64 channels at 16x16 and 32x32 took 0.76-0.81 of
// the time they took at AVX2's 64 (2 threads, Zen 5); 128 channels and more ran slower
// (1.1-1.2) or the same, and keep 64 (docs/performance.md).
constexpr int64_t WINO4_NARROW_TILES = 128;  // B block 400 x 512 floats = 800 KB stays in L2

#include "kernels_common.h"
#include "transpose_avx.h"

// d[i*ds + r] = s[r*ls + i] for a 16-row x 4-column block: rows r, r+4, r+8, r+12
// share a register (one load and three inserts, on the load ports), then 8 shuffles
// give the 4 columns of 16 rows.
inline void tr16x4(const float* s, int64_t ls, float* d, int64_t ds) {
#define LTH_LD4(r)                                                                                       \
  _mm512_insertf32x4(                                                                                    \
      _mm512_insertf32x4(_mm512_insertf32x4(_mm512_broadcast_f32x4(_mm_loadu_ps(s + (r) * ls)),         \
                                            _mm_loadu_ps(s + ((r) + 4) * ls), 1),                        \
                         _mm_loadu_ps(s + ((r) + 8) * ls), 2),                                           \
      _mm_loadu_ps(s + ((r) + 12) * ls), 3)
  const __m512 r0 = LTH_LD4(0), r1 = LTH_LD4(1), r2 = LTH_LD4(2), r3 = LTH_LD4(3);
#undef LTH_LD4
  const __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
  const __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
  _mm512_storeu_ps(d + 0 * ds, _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)));
  _mm512_storeu_ps(d + 1 * ds, _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)));
  _mm512_storeu_ps(d + 2 * ds, _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)));
  _mm512_storeu_ps(d + 3 * ds, _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)));
}

// dst[c*stride + r] = src[r*ld + c] for r < rows, 0 for rows <= r < stride.
inline void pack_transpose(const float* __restrict src, int64_t ld, int rows, int64_t cols, float* __restrict dst,
                           int stride) {
  const int64_t c4 = cols & ~(int64_t)3;
  int r = 0;
  for (; r + 16 <= rows; r += 16) {
    for (int64_t c = 0; c < c4; c += 4) tr16x4(src + r * ld + c, ld, dst + c * stride + r, stride);
    if (c4 < cols) pack_transpose_scalar(src, ld, r, r + 16, c4, cols, dst, stride);
  }
  if (r < rows) pack_transpose_rows_avx(src, ld, r, rows, cols, dst, stride);
  pack_zero_pad(rows, cols, dst, stride);
}

// C[0:mr, 0:nr] (+)= sum_p A[p*12 + i] * B[p*ldb + j], or with STRIDED A[i*lda + p] (A's
// rows in place, unpacked: the same multiply-adds in the same order). With HALF only the
// first 16 columns are computed (for edge panels with nr <= 16), and only the first ROWS
// rows (4, 8 or 12, at least mr: an edge panel of a 16-row product is 4 rows, and
// computing all 12 took as long as a full panel); each element's FMA chain is the same
// either way.
template <int ROWS, bool HALF, bool STRIDED>
inline void micro_kernel_12x32(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                               float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  __m512 c0a = _mm512_setzero_ps(), c0b = _mm512_setzero_ps();
  __m512 c1a = _mm512_setzero_ps(), c1b = _mm512_setzero_ps();
  __m512 c2a = _mm512_setzero_ps(), c2b = _mm512_setzero_ps();
  __m512 c3a = _mm512_setzero_ps(), c3b = _mm512_setzero_ps();
  __m512 c4a = _mm512_setzero_ps(), c4b = _mm512_setzero_ps();
  __m512 c5a = _mm512_setzero_ps(), c5b = _mm512_setzero_ps();
  __m512 c6a = _mm512_setzero_ps(), c6b = _mm512_setzero_ps();
  __m512 c7a = _mm512_setzero_ps(), c7b = _mm512_setzero_ps();
  __m512 c8a = _mm512_setzero_ps(), c8b = _mm512_setzero_ps();
  __m512 c9a = _mm512_setzero_ps(), c9b = _mm512_setzero_ps();
  __m512 c10a = _mm512_setzero_ps(), c10b = _mm512_setzero_ps();
  __m512 c11a = _mm512_setzero_ps(), c11b = _mm512_setzero_ps();
#define LTH_ROW_AT(i, at)                                   \
  if (i < ROWS) {                                           \
    const __m512 a = _mm512_set1_ps(at);                    \
    c##i##a = _mm512_fmadd_ps(a, b0, c##i##a);              \
    if (!HALF) c##i##b = _mm512_fmadd_ps(a, b1, c##i##b);   \
  }
  if (!STRIDED) {
#define LTH_ROW(i) LTH_ROW_AT(i, A[i])
    for (int64_t p = 0; p < kc; p++) {
      const __m512 b0 = _mm512_loadu_ps(B);
      const __m512 b1 = HALF ? b0 : _mm512_loadu_ps(B + 16);
      LTH_ROW(0) LTH_ROW(1) LTH_ROW(2) LTH_ROW(3) LTH_ROW(4) LTH_ROW(5)
      LTH_ROW(6) LTH_ROW(7) LTH_ROW(8) LTH_ROW(9) LTH_ROW(10) LTH_ROW(11)
      A += MR;
      B += ldb;
    }
#undef LTH_ROW
  } else {
    // Row i at A + i*lda: three row pointers, the rows between them at 1, 2 and 3 lda.
    const float* __restrict a4 = A + 4 * lda;
    const float* __restrict a8 = A + 8 * lda;
    const int64_t l2 = 2 * lda, l3 = 3 * lda;
#define LTH_ROW(i) LTH_ROW_AT(i, (i < 4 ? A : i < 8 ? a4 : a8)[(i % 4) == 0 ? 0 : (i % 4) == 1 ? lda : (i % 4) == 2 ? l2 : l3])
    for (int64_t p = 0; p < kc; p++) {
      const __m512 b0 = _mm512_loadu_ps(B);
      const __m512 b1 = HALF ? b0 : _mm512_loadu_ps(B + 16);
      LTH_ROW(0) LTH_ROW(1) LTH_ROW(2) LTH_ROW(3) LTH_ROW(4) LTH_ROW(5)
      LTH_ROW(6) LTH_ROW(7) LTH_ROW(8) LTH_ROW(9) LTH_ROW(10) LTH_ROW(11)
      A++;
      a4++;
      a8++;
      B += ldb;
    }
#undef LTH_ROW
  }
#undef LTH_ROW_AT
  if (nr == NR) {
#define LTH_STORE(i)                                                                    \
  if (i < ROWS && i < mr) {                                                                         \
    float* cr = C + i * ldc;                                                            \
    if (add) {                                                                          \
      _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), c##i##a));                \
      _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), c##i##b));      \
    } else {                                                                            \
      _mm512_storeu_ps(cr, c##i##a);                                                    \
      _mm512_storeu_ps(cr + 16, c##i##b);                                               \
    }                                                                                   \
  }
    LTH_STORE(0) LTH_STORE(1) LTH_STORE(2) LTH_STORE(3) LTH_STORE(4) LTH_STORE(5)
    LTH_STORE(6) LTH_STORE(7) LTH_STORE(8) LTH_STORE(9) LTH_STORE(10) LTH_STORE(11)
#undef LTH_STORE
  } else {
    const __mmask16 k0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 k1 = nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : (__mmask16)0;
#define LTH_STORE(i)                                                                                  \
  if (i < ROWS && i < mr) {                                                                                       \
    float* cr = C + i * ldc;                                                                          \
    if (add) {                                                                                        \
      _mm512_mask_storeu_ps(cr, k0, _mm512_add_ps(_mm512_maskz_loadu_ps(k0, cr), c##i##a));           \
      if (!HALF)                                                                                      \
        _mm512_mask_storeu_ps(cr + 16, k1, _mm512_add_ps(_mm512_maskz_loadu_ps(k1, cr + 16), c##i##b)); \
    } else {                                                                                          \
      _mm512_mask_storeu_ps(cr, k0, c##i##a);                                                         \
      if (!HALF) _mm512_mask_storeu_ps(cr + 16, k1, c##i##b);                                         \
    }                                                                                                 \
  }
    LTH_STORE(0) LTH_STORE(1) LTH_STORE(2) LTH_STORE(3) LTH_STORE(4) LTH_STORE(5)
    LTH_STORE(6) LTH_STORE(7) LTH_STORE(8) LTH_STORE(9) LTH_STORE(10) LTH_STORE(11)
#undef LTH_STORE
  }
}

template <int ROWS, bool STRIDED>
inline void micro_kernel_rows(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                              float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  if (nr > 16)
    micro_kernel_12x32<ROWS, false, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else
    micro_kernel_12x32<ROWS, true, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
}

// The driver may pass op(A) unpacked where it is A's rows (kernels_impl.h).
constexpr bool kReadsAInPlace = true;

// 16 values' bits a compare, stored as two bytes.
void relu_bits(const float* y, uint8_t* bits, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + k), zero, _CMP_GT_OQ);  // false for NaN
    bits[k >> 3] = (uint8_t)m;
    bits[(k >> 3) + 1] = (uint8_t)(m >> 8);
  }
  relu_bits_from(y, bits, k, n);
}

void mask_by_bits(const float* g, const uint8_t* bits, float* out, int64_t n) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __mmask16 m = (__mmask16)(bits[k >> 3] | (unsigned)bits[(k >> 3) + 1] << 8);
    _mm512_storeu_ps(out + k, _mm512_maskz_mov_ps(m, _mm512_loadu_ps(g + k)));
  }
  mask_by_bits_from(g, bits, out, k, n);
}

// Rows of A the kernel reads for a panel of mr rows: 4, 8 or 12.
constexpr int kernel_rows(int mr) { return mr > 8 ? 12 : mr > 4 ? 8 : 4; }

// A packed (lda 0: A[p*MR + i]) or read in place (A[i*lda + p], only where mr is
// kernel_rows(mr), so that every row read is one of op(A)'s).
template <bool STRIDED>
inline void micro_kernel_t(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                           float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  const int rows = kernel_rows(mr);
  if (rows == 12)
    micro_kernel_rows<12, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else if (rows == 8)
    micro_kernel_rows<8, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else
    micro_kernel_rows<4, STRIDED>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
}

inline void micro_kernel(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                         float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  if (lda)
    micro_kernel_t<true>(kc, A, lda, B, ldb, C, ldc, mr, nr, add);
  else
    micro_kernel_t<false>(kc, A, 0, B, ldb, C, ldc, mr, nr, add);
}

// C[i*n + j] (+)= Σ_p A[i*k + p]·B[j*k + p] for i in [r0, r1), j in [c0, c1): gemm with
// transB (not transA), both operands read along k as stored, no packing. A 4x4 block of C
// keeps 16 accumulators of 16 lanes (lane l sums the terms p ≡ l mod 16, the last partial
// vector loaded with zeros past k), each then summed across its lanes in a fixed order. A
// block at the edge reads its missing rows and columns again from the last one and drops
// them, so every element goes through the same instructions wherever its block falls.
void gemm_nt(const lth::GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float*) {
  const int64_t k = g.k, n = g.n, full = k & ~(int64_t)15;
  if (k == 0) return empty_product(g, r0, r1, c0, c1);
  const __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1);
  for (int64_t i0 = r0; i0 < r1; i0 += 4) {
    const float* a[4];
    for (int r = 0; r < 4; r++) a[r] = g.a + (i0 + r < r1 ? i0 + r : r1 - 1) * k;
    for (int64_t j0 = c0; j0 < c1; j0 += 4) {
      const float* b[4];
      for (int c = 0; c < 4; c++) b[c] = g.b + (j0 + c < c1 ? j0 + c : c1 - 1) * k;
      __m512 s[4][4];
      for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) s[r][c] = _mm512_setzero_ps();
      for (int64_t p = 0; p < full; p += 16) {
        __m512 av[4], bv[4];
        for (int r = 0; r < 4; r++) av[r] = _mm512_loadu_ps(a[r] + p);
        for (int c = 0; c < 4; c++) bv[c] = _mm512_loadu_ps(b[c] + p);
        for (int r = 0; r < 4; r++)
          for (int c = 0; c < 4; c++) s[r][c] = _mm512_fmadd_ps(av[r], bv[c], s[r][c]);
      }
      if (tail) {
        __m512 av[4], bv[4];
        for (int r = 0; r < 4; r++) av[r] = _mm512_maskz_loadu_ps(tail, a[r] + full);
        for (int c = 0; c < 4; c++) bv[c] = _mm512_maskz_loadu_ps(tail, b[c] + full);
        for (int r = 0; r < 4; r++)
          for (int c = 0; c < 4; c++) s[r][c] = _mm512_fmadd_ps(av[r], bv[c], s[r][c]);
      }
      for (int r = 0; r < 4 && i0 + r < r1; r++)
        for (int c = 0; c < 4 && j0 + c < c1; c++) {
          float* out = g.c + (i0 + r) * n + j0 + c;
          const float v = _mm512_reduce_add_ps(s[r][c]);
          *out = g.accumulate ? *out + v : v;
        }
    }
  }
}
#define LTH_GEMM_NT gemm_nt

// Up to 16 rows, where the packed kernel's 12-row panels are a third empty and packing both
// operands costs as much as the products (Winograd's 16x16 weight-gradient products ran
// 25% faster, 32x32 and 64x64 ones 5% and 25% slower). Also up to 32 columns over 256 or
// more terms: a first layer's weight gradient (27 columns, its 3 channels' 3x3 windows,
// over its output pixels), where gemm packs both operands for a single column panel. Its
// 27 columns by 32 to 128 rows over 1024 terms took 0.73-0.94 of gemm's time, by 64 rows
// over 256 terms 0.90; 72 columns took 0.95 over 1024 terms but 1.14 over 256, and 27
// columns over 64 terms 1.28 (docs/performance.md).
bool nt_faster(int64_t m, int64_t n, int64_t k) { return m <= 16 || (n <= 32 && k >= 256); }

#include "kernels_impl.h"

}  // namespace

const lth::Kernels* lth::get_kernels_avx512() { return &kTable; }

#else

const lth::Kernels* lth::get_kernels_avx512() { return nullptr; }

#endif
