// The parts of elementwise.cc that the bindings and the fused MLP steps (sparse_mlp.cc,
// dense_mlp.cc) share: the optimiser update, the softmax cross-entropy, the count of
// correct predictions and the gather of a minibatch's rows.
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

// update_params over n elements split across the pool (from 64k elements, in parts of whole
// 64-byte lines): what the adam / sgd exports run.
void update_params_split(const UpdateRule& r, float* p, float* g, float* s0, float* s1, const float* mask, int64_t n);

// The summed softmax cross-entropy of logits [rows, cols] against labels (each in
// [0, cols), checked by the caller), in double in row order; with grad (else null), also
// grad = (softmax - onehot)·scale. What the softmaxXent export computes.
double softmax_xent(const float* logits, const int32_t* labels, int64_t rows, int64_t cols, float* grad, double scale);

// The rows of logits [rows, cols] whose first maximum is their label.
int64_t count_correct(const float* logits, const int32_t* labels, int64_t rows, int64_t cols);

// dst [count, rowSize] = the rows idx[0 .. count) of src (checked by the caller), split
// across the pool from 32 rows.
void gather_rows(const float* src, int64_t rowSize, const int32_t* idx, int64_t count, float* dst);

}  // namespace lth
