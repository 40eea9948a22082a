// Flush-to-zero and denormals-are-zero for the length of one kernel call: denormal
// floats are ~100x slower on x86, and lth's kernels treat them as zero (see README,
// "Denormals"). The previous MXCSR comes back on exit, so JavaScript's own double
// arithmetic keeps its denormals. Shared by the binding units.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>

namespace lth {
constexpr unsigned kFtzDaz = 0x8040;  // MXCSR FTZ (bit 15) | DAZ (bit 6)
struct FtzScope {
  unsigned saved;
  FtzScope() : saved(_mm_getcsr()) {
    if ((saved & kFtzDaz) != kFtzDaz) _mm_setcsr(saved | kFtzDaz);
  }
  ~FtzScope() {
    if ((saved & kFtzDaz) != kFtzDaz) _mm_setcsr(saved);
  }
};
}  // namespace lth
#else
namespace lth {
struct FtzScope {};
}  // namespace lth
#endif
