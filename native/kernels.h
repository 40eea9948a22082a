// The kernel table shared by the ISA-specific translation units (kernels_*.cc) and
// the binding units (gemm.cc, elementwise.cc; lth_native.cc chooses the table, see dispatch.h).
//
// The ISA units are compiled with different -m flags. To keep code compiled for a
// wider ISA from leaking into the baseline build through the linker's merging of
// inline functions, they include no C++ standard headers and keep every helper in
// an anonymous namespace; the only symbols they export are the get_kernels_*()
// functions below.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace lth {

struct GemmArgs {
  const float* a;
  const float* b;
  float* c;
  int64_t m, k, n;
  bool transA, transB, accumulate;
};

struct Kernels {
  const char* name;  // "avx512" | "avx2" | "scalar"
  int mr, nr;        // register tile of the GEMM micro-kernel
  size_t scratchFloats;  // size of the per-thread scratch buffer gemm() needs

  // Computes rows [r0, r1) x columns [c0, c1) of C. r0 must be a multiple of mr and
  // c0 of nr (the partition follows the global tile grid, so every element of C is
  // computed by exactly the same instructions whatever the partition). `scratch`
  // is 64-byte aligned and holds scratchFloats floats.
  void (*gemm)(const GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* scratch);

  void (*biasAct)(const float* x, const float* bias, float* out, int64_t rows, int64_t cols, bool relu);
  void (*reluBackward)(const float* gradOut, const float* y, float* gradIn, int64_t n);
  // Column sums with double accumulators in row order (the reference's order).
  void (*sumRows)(const float* x, float* out, int64_t rows, int64_t cols, bool accumulate);
  // ob1 = 1 - beta1, ob2 = 1 - beta2 (rounded from double: 1 - 0.999f is 1.3e-5 off);
  // stepSize = lr / (1 - beta1^step); invBc2 = 1 / sqrt(1 - beta2^step).
  // adam and sgd consume the gradient: g is zero afterwards.
  void (*adam)(float* p, float* g, float* m, float* v, const float* mask, int64_t n,
               float beta1, float beta2, float ob1, float ob2, float stepSize, float invBc2, float eps);
  void (*sgd)(float* p, float* g, float* buf, const float* mask, int64_t n,
              float lr, float momentum, float weightDecay);
  void (*applyMask)(float* x, const float* mask, int64_t n);

  // Winograd F(2x2, 3x3) transforms of one row of tw tiles (winograd.cc). winoIn reads 4
  // zero-padded input rows (row r at rows + r*ld, tile tx covering columns 2tx..2tx+3) and
  // writes the 16 entries of each tile's Bᵀ·d·B to v[e*estride + tx], e = 4*row + column.
  // winoOut reads the 16 products m[e*estride + tx] and writes (or adds, with accumulate)
  // the 2x2 outputs Aᵀ·M·A of tile tx to y0[2tx + j] (top row) and y1[2tx + j] (bottom
  // row, skipped when y1 is null), for the columns 2tx + j < width (tw = ⌈width/2⌉).
  void (*winoIn)(const float* rows, int64_t ld, int64_t tw, float* v, int64_t estride);
  void (*winoOut)(const float* m, int64_t estride, int64_t width, float* y0, float* y1, bool accumulate);
};

// nullptr when the ISA is not compiled in (non-x86 builds).
const Kernels* get_kernels_avx512();
const Kernels* get_kernels_avx2();
const Kernels* get_kernels_scalar();

}  // namespace lth
