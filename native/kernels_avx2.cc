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

#include "kernels_common.h"
#include "transpose_avx.h"

// dst[c*stride + r] = src[r*ld + c] for r < rows, 0 for rows <= r < stride.
inline void pack_transpose(const float* __restrict src, int64_t ld, int rows, int64_t cols, float* __restrict dst,
                           int stride) {
  pack_transpose_rows_avx(src, ld, 0, rows, cols, dst, stride);
  pack_zero_pad(rows, cols, dst, stride);
}

// C[0:mr, 0:nr] (+)= sum_p A[p*6 + i] * B[p*16 + j]. With HALF only the first 8
// columns are computed (edge panels with nr <= 8); each column's FMA chain is the
// same either way.
template <bool HALF>
inline void micro_kernel_6x16(int64_t kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                              int64_t ldc, int mr, int nr, bool add) {
  __m256 c0a = _mm256_setzero_ps(), c0b = _mm256_setzero_ps();
  __m256 c1a = _mm256_setzero_ps(), c1b = _mm256_setzero_ps();
  __m256 c2a = _mm256_setzero_ps(), c2b = _mm256_setzero_ps();
  __m256 c3a = _mm256_setzero_ps(), c3b = _mm256_setzero_ps();
  __m256 c4a = _mm256_setzero_ps(), c4b = _mm256_setzero_ps();
  __m256 c5a = _mm256_setzero_ps(), c5b = _mm256_setzero_ps();
#define LTH_ROW(i)                                \
  {                                               \
    const __m256 a = _mm256_broadcast_ss(A + i);  \
    c##i##a = _mm256_fmadd_ps(a, b0, c##i##a);    \
    if (!HALF) c##i##b = _mm256_fmadd_ps(a, b1, c##i##b);  \
  }
  for (int64_t p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_load_ps(B);
    const __m256 b1 = HALF ? b0 : _mm256_load_ps(B + 8);
    LTH_ROW(0) LTH_ROW(1) LTH_ROW(2) LTH_ROW(3) LTH_ROW(4) LTH_ROW(5)
    A += MR;
    B += NR;
  }
#undef LTH_ROW
  if (nr == NR) {
#define LTH_STORE(i)                                                               \
  if (i < mr) {                                                                    \
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
  if (i < mr) {                                                                             \
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

inline void micro_kernel(int64_t kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                         int64_t ldc, int mr, int nr, bool add) {
  if (nr > 8)
    micro_kernel_6x16<false>(kc, A, B, C, ldc, mr, nr, add);
  else
    micro_kernel_6x16<true>(kc, A, B, C, ldc, mr, nr, add);
}

#include "kernels_impl.h"

}  // namespace

const lth::Kernels* lth::get_kernels_avx2() { return &kTable; }

#else

const lth::Kernels* lth::get_kernels_avx2() { return nullptr; }

#endif
