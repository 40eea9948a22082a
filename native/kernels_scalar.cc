// Portable kernels for CPUs without AVX2 (and non-x86 builds): a 4x8 multiply-add
// register tile written with vector extensions (SSE2 on baseline x86-64).
#include "kernels.h"

namespace {

constexpr const char* kIsaName = "scalar";
constexpr int MR = 4;
constexpr int NR = 8;
constexpr int64_t KCMAX = 256;
constexpr int64_t NCMAX = 256;
constexpr int64_t WINO4_NARROW_TILES = 64;

#include "kernels_common.h"

inline void pack_transpose(const float* __restrict src, int64_t ld, int rows, int64_t cols, float* __restrict dst,
                           int stride) {
  pack_transpose_scalar(src, ld, 0, rows, 0, cols, dst, stride);
  pack_zero_pad(rows, cols, dst, stride);
}

// GCC/Clang vector extensions: SSE on baseline x86-64, NEON on arm64, plain scalar
// code elsewhere.
typedef float v4 __attribute__((vector_size(16)));
typedef float v4u __attribute__((vector_size(16), aligned(4)));  // unaligned access

// Reads A packed only (lda is always 0 here: kReadsAInPlace).
constexpr bool kReadsAInPlace = false;

void relu_bits(const float* y, uint8_t* bits, int64_t n) { relu_bits_from(y, bits, 0, n); }
void mask_by_bits(const float* g, const uint8_t* bits, float* out, int64_t n) { mask_by_bits_from(g, bits, out, 0, n); }
constexpr int kernel_rows(int mr) { return mr; }

inline void micro_kernel(int64_t kc, const float* __restrict A, int64_t, const float* __restrict B, int64_t ldb,
                         float* __restrict C, int64_t ldc, int mr, int nr, bool add) {
  v4 c0a = {0, 0, 0, 0}, c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, c3b = c0a;
  for (int64_t p = 0; p < kc; p++) {
    const v4 b0 = *reinterpret_cast<const v4u*>(B), b1 = *reinterpret_cast<const v4u*>(B + 4);
    const float a0 = A[0], a1 = A[1], a2 = A[2], a3 = A[3];
    c0a += a0 * b0; c0b += a0 * b1;
    c1a += a1 * b0; c1b += a1 * b1;
    c2a += a2 * b0; c2b += a2 * b1;
    c3a += a3 * b0; c3b += a3 * b1;
    A += MR;
    B += ldb;
  }
  const v4 acc[MR][2] = {{c0a, c0b}, {c1a, c1b}, {c2a, c2b}, {c3a, c3b}};
  if (nr == NR) {
    for (int i = 0; i < mr; i++) {
      v4u* cr = reinterpret_cast<v4u*>(C + i * ldc);
      if (add) {
        cr[0] = cr[0] + acc[i][0];
        cr[1] = cr[1] + acc[i][1];
      } else {
        cr[0] = acc[i][0];
        cr[1] = acc[i][1];
      }
    }
  } else {
    for (int i = 0; i < mr; i++) {
      float* cr = C + i * ldc;
      for (int j = 0; j < nr; j++) {
        const float v = acc[i][j >> 2][j & 3];
        cr[j] = add ? cr[j] + v : v;
      }
    }
  }
}

#include "kernels_impl.h"

}  // namespace

const lth::Kernels* lth::get_kernels_scalar() { return &kTable; }
