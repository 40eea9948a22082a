// The optimiser update shared by the adam / sgd bindings (elementwise.cc) and the fused
// sparse step (sparse_mlp.cc).
#pragma once

#include <cstdint>

namespace lth {

// An optimiser's update rule, as the adam / sgd exports take it.
struct UpdateRule {
  bool adam;
  double lr, beta1, beta2, eps, step;  // Adam
  double momentum, weightDecay;        // SGD (with lr)
};

// The update of n parameters p from their gradient g (then zeroed) and state s0 (Adam's
// m, SGD's momentum buffer), s1 (Adam's v), entries where `mask` (if not null) is 0 held
// at 0, on the calling thread with the kernels of the path in use. The adam / sgd exports
// run it over ranges on the pool; it is elementwise, so a range gives the same values.
void update_params(const UpdateRule& r, float* p, float* g, float* s0, float* s1, const float* mask, int64_t n);

}  // namespace lth
