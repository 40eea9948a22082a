// The batched im2col convolution's backward pass (conv2d.cc), image by image, for an op
// that computes a first layer's output gradient itself and hands it on one image at a
// time (winograd.cc's conv3x3ThroughConv2d) instead of storing the whole batch's.
#pragma once

#include <cstdint>

#include "im2col.h"

namespace lth {

struct ConvJob {
  ConvGeom g;
  int64_t n, cout;
  const float* x;
  const float* w;
  const float* wp;    // op(W) packed for GemmArgs::aPacked: W (forward), Wᵀ (input gradient)
  const float* bias;  // forward: [cout] or null
  float* y;           // forward: the output
  const float* gy;    // backward: the output gradient
  // The ReLU's mask as bits (Kernels::rowBiasAct), image b's from byte b * mask_bytes():
  // forward with relu: written when set; backward: gy masked where a bit is clear (the
  // ReLU's backward), when set.
  uint8_t* reluMask;
  double* biasSums;   // backward: n x cout sums of the (masked) gy's planes, or null (no bias gradient)
  float* gx;          // backward: the input gradient, or null
  float* partials;    // backward: groups x [cout, ckk], or null (no weight gradient)
  int64_t groups;
  bool relu;  // forward: max(0, ·) after the bias
  bool accumulateIn;

  int64_t ckk() const { return g.c * g.kh * g.kw; }
  int64_t hw() const { return g.oh * g.ow; }
  int64_t in_size() const { return g.c * g.h * g.w; }
  int64_t out_size() const { return cout * hw(); }
  int64_t mask_bytes() const { return (out_size() + 7) / 8; }
  // Whether an image is its own column matrix (1x1, stride 1, no padding).
  bool identity() const { return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0; }
};

// Image b's share of the weight and bias gradients from its output gradient gyb (not yet
// through the ReLU): gyb masked (into a buffer of the thread) by j.reluMask, its planes' sums
// into j.biasSums when set, and partial (+ with `accumulate`)= gY_b · col_bᵀ when partial is
// set. Returns the masked gradient (gyb itself without a mask) for the input gradient.
const float* conv2d_grad_image(const ConvJob& j, int64_t b, const float* gyb, float* partial, bool accumulate,
                               float* scratch);

// gradBias += the bias sums (when gb), gradWeight += the `parts` partials added in order (when gw).
void conv2d_add_grads(const ConvJob& j, int64_t parts, float* gw, float* gb);

}  // namespace lth
