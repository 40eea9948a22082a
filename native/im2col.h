// The im2col / col2im loops of conv.cc, which the batched convolution (conv2d.cc) runs
// image by image too, and the bias gradient's sums that both take.
#pragma once

#include <cstdint>

#include "napi_args.h"

namespace lth {

// One image's convolution geometry: channels, input size, kernel, stride, padding, and
// the output size they give.
struct ConvGeom {
  int64_t c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// Fills g from the arguments (the output size included); false, with a RangeError in `a`,
// when the kernel does not fit the padded image.
bool conv_geometry(ArgReader& a, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                   int64_t ph, int64_t pw, ConvGeom* g);

// Rows [r0, r1) of image x's columns (row r = (ch*kh + i)*kw + j, outH*outW entries each).
void im2col_rows(const float* __restrict x, float* __restrict col, const ConvGeom& g, int64_t r0, int64_t r1);

// Channels [c0, c1) of x += col2im(col): each channel's plane only receives from its
// own kh*kw rows of col, in a fixed order.
void col2im_channels(const float* __restrict col, float* __restrict x, const ConvGeom& g, int64_t c0, int64_t c1);

// The sum of a plane of the bias gradient: in 16 float lanes (independent, so the compiler
// vectorises them on any ISA), then the lanes in double: a fixed order, and no float sum
// runs over more than size/16 values.
double plane_sum(const float* p, int64_t size);

// gradBias[c] += Σ_i sums[i*ch + c], in sample order (sumChannels').
void add_channel_sums(const double* sums, int64_t n, int64_t ch, float* gb);

}  // namespace lth
