// The SIMD path in use for the GEMM and elementwise kernels (lth_native.cc chooses it
// when the addon loads and switches it in setSimd; the sparse kernels have their own
// table, gS in sparse_kernels.h, switched with it).
#pragma once

#include <stddef.h>

#include "kernels.h"

namespace lth {

// The kernel table of the path in use.
extern const Kernels* gK;

// The kernel for C (+)= A·Bᵀ with m rows (a weight gradient's product): gemmNT up to 16
// rows, where the packed kernel's 12-row panels are a third empty and packing both
// operands costs as much as the products (on AVX-512, Winograd's 16x16 weight-gradient
// products ran 25% faster, 32x32 and 64x64 ones 5% and 25% slower); gemm from 17.
inline decltype(Kernels::gemm) nt_product(int64_t m) { return m <= 16 ? gK->gemmNT : gK->gemm; }

// Floats of a thread's GEMM scratch: the most any path this CPU has needs, so that a
// buffer allocated for one path serves after setSimd switches to another.
extern size_t gScratchFloats;

}  // namespace lth
