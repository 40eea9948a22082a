// The GEMM driver (gemm.cc), for the matmul export and the fused dense MLP (dense_mlp.cc).
#pragma once

#include <vector>

#include "kernels.h"

namespace lth {

// Below this many multiply-adds (m*n*k) a GEMM runs on the calling thread alone.
constexpr double kGemmParallelMinWork = 400000.0;

// C (+)= op(A)·op(B) on the kernels of the path in use, split across the pool by whole
// tiles from 400k multiply-adds (results do not depend on the thread count). m, n >= 1;
// C shares no memory with A or B (checked by the caller). The caller sets flush-to-zero.
void matmul(const GemmArgs& g);

// Floats of op(A) [m x k] packed whole for GemmArgs::aPacked (whole row panels).
size_t packed_a_floats(int64_t m, int64_t k);

// op(A) [m x k] packed whole for GemmArgs::aPacked into `buf` (grown as needed; the
// caller's thread_local), on the calling thread: for a weight that many products share.
const float* pack_a(const float* a, int64_t m, int64_t k, bool transA, std::vector<float>& buf);

// Floats of op(B) [k x n] packed whole in column panels for GemmArgs::bPanel = k*nr.
size_t packed_b_floats(int64_t k, int64_t n);

// op(B) [k x n] packed whole in column panels for GemmArgs::bPanel = k*nr into `buf` (grown
// as needed; the caller's thread_local), 64-byte aligned, on the calling thread: for a weight
// that a loop of products shares (an LSTM's W_hh, one product per time step).
const float* pack_b(const float* b, int64_t k, int64_t n, bool transB, std::vector<float>& buf);

}  // namespace lth
