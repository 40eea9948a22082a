// Sparse kernels of lth_native (native/sparse.cc): the masked fully connected layer
// at the mask's nonzeros.
#pragma once

#include <node_api.h>
#include <cstdint>

#include "pool.h"

namespace lth {


// An optimiser's update rule, as the adam / sgd exports take it.
struct UpdateRule {
  bool adam;
  double lr, beta1, beta2, eps, step;  // Adam
  double momentum, weightDecay;        // SGD (with lr)
};

// Defined in lth_native.cc: the update of n parameters p from their gradient g (then
// zeroed) and state s0 (Adam's m, SGD's momentum buffer), s1 (Adam's v), entries where
// `mask` (if not null) is 0 held at 0, on the calling thread. The adam / sgd exports run
// it over ranges on the pool; it is elementwise, so a range gives the same values.
void update_params(const UpdateRule& r, float* p, float* g, float* s0, float* s1, const float* mask, int64_t n);

// Adds the sparse kernels (sparsePattern, sparseForward, sparseInputGrad, sparseWeightGrad,
// toPanels, fromPanels, sparseMlpStep, sparseMlpEval) to `exports`.
// `simd` is the path lth_native chose ('avx512' | 'avx2' | 'scalar').
bool register_sparse(napi_env env, napi_value exports, const char* simd);

}  // namespace lth
