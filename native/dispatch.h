// The SIMD path in use for the GEMM and elementwise kernels (lth_native.cc chooses it
// when the addon loads and switches it in setSimd; the sparse kernels have their own
// table, gS in sparse_kernels.h, switched with it).
#pragma once

#include <stddef.h>
#include <string.h>

#include "kernels.h"

namespace lth {

// The kernel table of the path in use.
extern const Kernels* gK;

// The kernel for C (+)= A·Bᵀ [m x n] over k (a weight gradient's product): gemmNT where
// the path's ntFaster says its dot products beat packing both operands for gemm.
inline decltype(Kernels::gemm) nt_product(int64_t m, int64_t n, int64_t k) {
  return gK->ntFaster(m, n, k) ? gK->gemmNT : gK->gemm;
}

// Whether the path in use has AVX2 (the avx2 and avx512 paths): the units that compile their
// loops per ISA without FMA (norm.cc, seq.cc) run their AVX2 copy then, where they have no
// AVX-512 one; every copy gives the same bits.
inline bool avx2_in_use() { return strcmp(gK->name, "scalar") != 0; }

// Whether the path in use is avx512 (seq.cc's AVX-512 copy).
inline bool avx512_in_use() { return strcmp(gK->name, "avx512") == 0; }

// Floats of a thread's GEMM scratch: the most any path this CPU has needs, so that a
// buffer allocated for one path serves after setSimd switches to another.
extern size_t gScratchFloats;

}  // namespace lth
