// The sparse kernels of the path in use (sparse_kernels.cc compiles sparse_impl.h once per
// ISA) and the whole-pattern products split across the pool, for the sparse bindings
// (sparse_bindings.cc) and the fused MLP (sparse_mlp.cc).
//
// Layout: activations are transposed into panels of 64 batch columns, [ld/64][features][64]
// (see sparse_impl.h); ld is the batch padded to a multiple of 16, and the padding columns
// of every output are zero.
#pragma once

#include <cstdint>

#include "sparse_pattern.h"

namespace lth {

// One ISA's sparse kernels (sparse_impl.h documents each).
struct SparseKernels {
  void (*forward)(const Pattern&, const float*, const float*, float*, const float*, int64_t, int64_t, int64_t, int64_t,
                  bool);
  void (*inputGrad)(const Pattern&, const float*, const float*, float*, int64_t, int64_t, int64_t);
  void (*weightGrad)(const Pattern&, const float*, const float*, float*, float*, int64_t, int64_t, int64_t);
  void (*toPanels)(const float*, float*, int64_t, int64_t, int64_t);
  void (*fromPanels)(const float*, float*, int64_t, int64_t, int64_t, bool);
  double (*softmaxXent)(const float*, float*, const int32_t*, int64_t, int64_t, int64_t, float);
  void (*reluMask)(float*, const float*, int64_t);
  void (*forwardBlocks)(const Pattern&, const float*, const float*, float*, const float*, int64_t, int64_t, int64_t);
  void (*addAct)(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
  void (*weightGradBlocks)(const Pattern&, const float*, const float*, float*, float*, int64_t, int64_t, int64_t);
  void (*gatherPanels)(const float*, int64_t, const int32_t*, int64_t, int64_t, int64_t, float*, int64_t);
  void (*evalLogits)(const float*, const int32_t*, int64_t, int64_t, int64_t, double*, int64_t*);
};

// The sparse kernels of the path in use.
extern const SparseKernels* gS;

// Switches gS to the path `name` ('avx512' | 'avx2' | 'scalar'; the caller has checked
// that the CPU has it).
void select_sparse_kernels(const char* name);

// Columns of the panels holding a padded batch of ld: whole panels of 64.
inline int64_t panel_cols(int64_t ld) { return (ld + 63) / 64 * 64; }

// A batch of n padded to a multiple of 16.
inline int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

// The three products over the whole pattern, split across the pool by rows (columns for
// the input gradient) of about equal nonzero counts when the product is big enough; each
// row is computed by the same instructions whoever runs it, so results do not depend on
// the thread count.
// outT = act(W·inT + bias) (bias may be null), 0 in the padding columns n <= c < ld.
void sparse_forward(const Pattern& p, const float* vals, const float* inT, float* outT, const float* bias, int64_t n,
                    int64_t ld, bool relu);
// gxT = Wᵀ·gyT (overwrites).
void sparse_input_grad(const Pattern& p, const float* vals, const float* gyT, float* gxT, int64_t ld);
// gvals += the weight gradient at the nonzeros, gbias += the row sums of gyT (either may be null).
void sparse_weight_grad(const Pattern& p, const float* gyT, const float* xT, float* gvals, float* gbias, int64_t ld);

}  // namespace lth
