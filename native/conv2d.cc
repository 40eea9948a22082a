// conv2d.cc: conv2d and conv2dBackward, the batched convolutions of the native backend
// that Winograd does not run (a first layer's few channels, strided and 1x1 convolutions;
// the Backend methods of the same names, same argument order; src/backend/backend.ts
// documents them and src/backend/reference.ts is the oracle).
//
// Image by image, as im2col + the GEMM of the path in use: Y_b = W · col_b, gW += gY_b ·
// col_bᵀ, gX_b += col2im(Wᵀ · gY_b), with the columns in a per-thread buffer (none for a
// 1x1 stride-1 convolution without padding, whose columns are the image). The pool runs
// whole images; a product runs on one thread, and the GEMM computes every element with
// the same instructions however its calls are split, so an image's output and input
// gradient are those of per-image im2col/matmul/col2im calls, bit for bit. The weight
// gradient sums the images in up to kGroups groups fixed by the batch and weight sizes
// (each group's images in order into its own partial, the partials then added in group
// order), so it does not depend on the thread count either. The backward pass takes the
// forward's bias and ReLU backward too (channelBiasActBackward's), an image at a time
// while its output gradient is in cache for the products, rather than as a pass of its own
// over the whole batch's; the ReLU's mask comes from the forward pass as bits, so that the
// backward pass need not read the output (32 times the mask's bytes) to find it. That
// per-image backward is shared (conv2d.h) with conv3x3ThroughConv2d (winograd.cc), which
// computes a first layer's output gradient an image block at a time and hands it on.

#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "conv2d.h"
#include "gemm.h"
#include "im2col.h"
#include "napi_args.h"
#include "pool.h"

namespace {

using lth::ConvGeom;
using lth::ConvJob;
using lth::GemmArgs;
using lth::gK;

// Groups of images the weight gradient is summed in: enough for 2-8 threads to share, fewer
// where their partials would pass kMaxPartialFloats (a wide layer's weight is megabytes).
constexpr int64_t kGroups = 8;
constexpr int64_t kMaxPartialFloats = (int64_t)1 << 22;

// The groups of a batch of n images and a weight of wsize floats: fixed by the geometry.
int64_t groups_for(int64_t n, int64_t wsize) {
  int64_t g = kMaxPartialFloats / wsize;
  if (g > kGroups) g = kGroups;
  if (g > n) g = n;
  return g < 1 ? 1 : g;
}

GemmArgs packed_a(GemmArgs g) {
  g.aPacked = true;
  return g;
}

float* thread_buffer(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Image b's columns [ckk, hw]: the image itself, or im2col of it in this thread's buffer.
const float* columns(const ConvJob& j, int64_t b) {
  const float* xb = j.x + b * j.in_size();
  if (j.identity()) return xb;
  thread_local std::vector<float> buf;
  float* col = thread_buffer(buf, (size_t)(j.ckk() * j.hw()));
  lth::im2col_rows(xb, col, j.g, 0, j.ckk());
  return col;
}

void forward_image(const ConvJob& j, int64_t b, float* scratch) {
  const int64_t hw = j.hw();
  float* yb = j.y + b * j.out_size();
  gK->gemm(packed_a(GemmArgs{j.wp, columns(j, b), yb, j.cout, j.ckk(), hw, false, false, false}), 0, j.cout, 0, hw,
           scratch);
  // channelBiasAct's arithmetic and the ReLU's mask, while the image's output is in cache.
  if (j.bias || j.relu)
    gK->rowBiasAct(yb, yb, j.bias, j.cout, hw, j.relu, j.reluMask ? j.reluMask + b * j.mask_bytes() : nullptr);
}

// Image b's output gradient gyb as the products take it: itself, or masked by the ReLU's
// bits (0 where the output was not above 0: channelBiasActBackward's rule) into this
// thread's buffer, where it is still in cache for both products; its planes' sums
// (plane_sum, as channelBiasActBackward takes them) kept for the bias gradient.
const float* output_grad(const ConvJob& j, int64_t b, const float* gyb) {
  const int64_t hw = j.hw(), size = j.out_size();
  if (j.reluMask) {
    thread_local std::vector<float> buf;
    float* masked = thread_buffer(buf, (size_t)size);
    gK->maskByBits(gyb, j.reluMask + b * j.mask_bytes(), masked, size);
    gyb = masked;
  }
  if (j.biasSums)
    for (int64_t o = 0; o < j.cout; o++) j.biasSums[b * j.cout + o] = lth::plane_sum(gyb + o * hw, hw);
  return gyb;
}

// Image b's input gradient from its output gradient gyb: gX_b (+)= col2im(Wᵀ · gY_b).
void input_grad_image(const ConvJob& j, int64_t b, const float* gyb, float* scratch) {
  const int64_t hw = j.hw(), ckk = j.ckk();
  float* gxb = j.gx + b * j.in_size();
  if (j.identity()) {
    gK->gemm(packed_a(GemmArgs{j.wp, gyb, gxb, ckk, j.cout, hw, true, false, j.accumulateIn}), 0, ckk, 0, hw, scratch);
    return;
  }
  thread_local std::vector<float> gbuf;
  float* gcol = thread_buffer(gbuf, (size_t)(ckk * hw));
  gK->gemm(packed_a(GemmArgs{j.wp, gyb, gcol, ckk, j.cout, hw, true, false, false}), 0, ckk, 0, hw, scratch);
  if (!j.accumulateIn) std::memset(gxb, 0, (size_t)j.in_size() * sizeof(float));
  lth::col2im_channels(gcol, gxb, j.g, 0, j.g.c);
}

void forward_part(void* ctx, int part, float* scratch) { forward_image(*static_cast<const ConvJob*>(ctx), part, scratch); }

// Group g of the backward pass: its images' weight gradients into partial g, their input gradients.
void backward_part(void* ctx, int part, float* scratch) {
  const ConvJob& j = *static_cast<const ConvJob*>(ctx);
  const int64_t b0 = j.n * part / j.groups, b1 = j.n * (part + 1) / j.groups;
  float* partial = j.partials ? j.partials + part * j.cout * j.ckk() : nullptr;
  for (int64_t b = b0; b < b1; b++) {
    const float* gyb = lth::conv2d_grad_image(j, b, j.gy + b * j.out_size(), partial, b > b0, scratch);
    if (j.gx) input_grad_image(j, b, gyb, scratch);
  }
}

// Runs fn over `parts` parts on the pool when the work is worth it, else on the caller.
void run(int64_t parts, double work, void (*fn)(void*, int, float*), ConvJob* job) {
  float* scratch = lth::caller_scratch();
  const int threads = lth::thread_count();
  if (threads > 1 && parts > 1 && parts < 65536 && work >= lth::kGemmParallelMinWork &&
      lth::run_parts_scratch(threads, (int)parts, fn, job, scratch))
    return;
  for (int64_t p = 0; p < parts; p++) fn(job, (int)p, scratch);
}

using lth::ArgSpec;
namespace arg = lth::arg;
using u128 = unsigned __int128;

// The shape arguments both exports take in the same order from `at`: n, inChannels,
// outChannels, height, width, kh, kw, strideH, strideW, padH, padW; and x and weight,
// their first two. False (which `a` holds) on a geometry conv_geometry refuses.
template <size_t N>
bool read_job(lth::Args<N>& a, size_t at, ConvJob& j) {
  if (!lth::conv_geometry(a, a[at + 1].dim(), a[at + 3].dim(), a[at + 4].dim(), a[at + 5].dim(), a[at + 6].dim(),
                          a[at + 7].dim(), a[at + 8].dim(), a[at + 9].dim(), a[at + 10].dim(), &j.g))
    return false;
  j.n = a[at].dim();
  j.cout = a[at + 2].dim();
  j.x = a[0].f32();
  j.w = a[1].f32();
  return true;
}

// conv2d(x, weight, bias, out, n, inChannels, outChannels, height, width, kh, kw, strideH, strideW, padH, padW, relu,
//        reluMask)
constexpr ArgSpec kConv2dArgs[] = {
    arg::f32("x"),          arg::f32("weight"),     arg::f32_or_null("bias"), arg::f32("out"),
    arg::dim("n"),          arg::dim("inChannels"), arg::dim("outChannels"),  arg::dim("height"),
    arg::dim("width"),      arg::dim("kh", 1),      arg::dim("kw", 1),        arg::dim("strideH", 1),
    arg::dim("strideW", 1), arg::dim("padH"),       arg::dim("padW"),         arg::flag("relu"),
    arg::u8_or_null("reluMask")};

napi_value Conv2d(napi_env env, napi_callback_info info) {
  lth::Args<17> a(env, info, "conv2d", kConv2dArgs);
  if (!a.ok()) return nullptr;
  ConvJob j{};
  if (!read_job(a, 4, j)) return nullptr;
  j.bias = a[2].present ? a[2].f32() : nullptr;
  j.y = a[3].f32();
  j.relu = a[15].flag;
  j.reluMask = a[16].present ? a[16].u8() : nullptr;
  const u128 inTotal = (u128)j.n * j.in_size(), outTotal = (u128)j.n * j.out_size();
  a.need("x", a[0].len, inTotal, "n*inChannels*height*width");
  a.need("weight", a[1].len, (u128)j.cout * j.ckk(), "outChannels*inChannels*kh*kw");
  if (j.bias) a.need("bias", a[2].len, (u128)j.cout, "outChannels");
  a.need("out", a[3].len, outTotal, "n*outChannels*outH*outW");
  if (j.reluMask && !j.relu) a.fail(false, "reluMask goes with relu");
  if (j.reluMask) a.need("reluMask", a[16].len, (u128)j.n * j.mask_bytes(), "n*ceil(outChannels*outH*outW/8)");
  if (!a.ok()) return nullptr;
  const size_t outBytes = (size_t)outTotal * sizeof(float);
  if (lth::overlaps(j.y, outBytes, j.x, (size_t)inTotal * sizeof(float)) ||
      lth::overlaps(j.y, outBytes, j.w, (size_t)(j.cout * j.ckk()) * sizeof(float))) {
    a.fail(true, "out must not share memory with x or weight");
    return nullptr;
  }
  const size_t maskBytes = j.reluMask ? (size_t)(j.n * j.mask_bytes()) : 0;
  if (lth::overlaps(j.reluMask, maskBytes, j.y, outBytes) ||
      lth::overlaps(j.reluMask, maskBytes, j.x, (size_t)inTotal * sizeof(float)) ||
      lth::overlaps(j.reluMask, maskBytes, j.w, (size_t)(j.cout * j.ckk()) * sizeof(float)) ||
      lth::overlaps(j.reluMask, maskBytes, j.bias, (size_t)j.cout * sizeof(float))) {
    a.fail(true, "reluMask must not share memory with x, weight, bias or out");
    return nullptr;
  }
  if (j.n == 0 || j.cout == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  thread_local std::vector<float> wbuf;  // every image's product shares the weight: packed once
  j.wp = lth::pack_a(j.w, j.cout, j.ckk(), false, wbuf);
  run(j.n, (double)j.n * j.cout * j.ckk() * j.hw(), forward_part, &j);
  return lth::undefined_value(env);
}

// conv2dBackward(x, weight, gradOut, gradIn, gradWeight, n, inChannels, outChannels, height, width, kh, kw, strideH,
//                strideW, padH, padW, accumulateIn, reluMask, gradBias)
constexpr ArgSpec kConv2dBackwardArgs[] = {
    arg::f32("x"),           arg::f32("weight"),       arg::f32("gradOut"),  arg::f32_or_null("gradIn"),
    arg::f32_or_null("gradWeight"), arg::dim("n"),     arg::dim("inChannels"), arg::dim("outChannels"),
    arg::dim("height"),      arg::dim("width"),        arg::dim("kh", 1),    arg::dim("kw", 1),
    arg::dim("strideH", 1),  arg::dim("strideW", 1),   arg::dim("padH"),     arg::dim("padW"),
    arg::flag("accumulateIn"), arg::u8_or_null("reluMask"), arg::f32_or_null("gradBias")};

napi_value Conv2dBackward(napi_env env, napi_callback_info info) {
  lth::Args<19> a(env, info, "conv2dBackward", kConv2dBackwardArgs);
  if (!a.ok()) return nullptr;
  ConvJob j{};
  if (!read_job(a, 5, j)) return nullptr;
  j.gy = a[2].f32();
  j.gx = a[3].present ? a[3].f32() : nullptr;
  float* gw = a[4].present ? a[4].f32() : nullptr;
  j.accumulateIn = a[16].flag;
  j.reluMask = a[17].present ? a[17].u8() : nullptr;
  float* gb = a[18].present ? a[18].f32() : nullptr;
  const u128 inTotal = (u128)j.n * j.in_size(), outTotal = (u128)j.n * j.out_size(), wTotal = (u128)j.cout * j.ckk();
  a.need("x", a[0].len, inTotal, "n*inChannels*height*width");
  a.need("weight", a[1].len, wTotal, "outChannels*inChannels*kh*kw");
  a.need("gradOut", a[2].len, outTotal, "n*outChannels*outH*outW");
  if (j.gx) a.need("gradIn", a[3].len, inTotal, "n*inChannels*height*width");
  if (gw) a.need("gradWeight", a[4].len, wTotal, "outChannels*inChannels*kh*kw");
  if (j.reluMask) a.need("reluMask", a[17].len, (u128)j.n * j.mask_bytes(), "n*ceil(outChannels*outH*outW/8)");
  if (gb) a.need("gradBias", a[18].len, (u128)j.cout, "outChannels");
  if (!a.ok()) return nullptr;
  const size_t inBytes = (size_t)inTotal * sizeof(float), outBytes = (size_t)outTotal * sizeof(float),
               wBytes = (size_t)wTotal * sizeof(float), maskBytes = j.reluMask ? (size_t)(j.n * j.mask_bytes()) : 0;
  if (lth::overlaps(j.gx, inBytes, j.x, inBytes) || lth::overlaps(j.gx, inBytes, j.gy, outBytes) ||
      lth::overlaps(j.gx, inBytes, j.w, wBytes) || lth::overlaps(j.gx, inBytes, j.reluMask, maskBytes)) {
    a.fail(true, "gradIn must not share memory with x, weight, gradOut or reluMask");
    return nullptr;
  }
  if (lth::overlaps(gw, wBytes, j.x, inBytes) || lth::overlaps(gw, wBytes, j.gy, outBytes) ||
      lth::overlaps(gw, wBytes, j.w, wBytes) || lth::overlaps(gw, wBytes, j.gx, inBytes) ||
      lth::overlaps(gw, wBytes, j.reluMask, maskBytes)) {
    a.fail(true, "gradWeight must not share memory with x, weight, gradOut, gradIn or reluMask");
    return nullptr;
  }
  const size_t gbBytes = (size_t)j.cout * sizeof(float);
  if (lth::overlaps(gb, gbBytes, j.gx, inBytes) || lth::overlaps(gb, gbBytes, gw, wBytes) ||
      lth::overlaps(gb, gbBytes, j.reluMask, maskBytes)) {
    a.fail(true, "gradBias must not share memory with gradIn, gradWeight or reluMask");
    return nullptr;
  }
  const int64_t wsize = j.cout * j.ckk();
  if (wsize == 0 || j.hw() == 0) {
    // No products: the weight gradient gets nothing, an overwritten input gradient zeros.
    if (j.gx && !j.accumulateIn) std::memset(j.gx, 0, inBytes);
    j.gx = nullptr;
    gw = nullptr;
  }
  if (j.n == 0 || (!j.gx && !gw && !gb)) return lth::undefined_value(env);
  lth::FtzScope ftz;
  thread_local std::vector<float> pbuf;  // the caller's: the pool's threads write through j.partials
  thread_local std::vector<double> sbuf;
  j.groups = groups_for(j.n, wsize > 0 ? wsize : 1);
  if (gw) j.partials = thread_buffer(pbuf, (size_t)(j.groups * wsize));
  if (gb) {
    if (sbuf.size() < (size_t)(j.n * j.cout)) sbuf.resize((size_t)(j.n * j.cout));
    j.biasSums = sbuf.data();
  }
  thread_local std::vector<float> wbuf;
  if (j.gx) j.wp = lth::pack_a(j.w, j.ckk(), j.cout, true, wbuf);
  run(j.groups, (double)j.n * j.out_size() * (1 + (gw ? j.ckk() : 0) + (j.gx ? j.ckk() : 0)), backward_part, &j);
  lth::conv2d_add_grads(j, j.groups, gw, gb);
  return lth::undefined_value(env);
}

}  // namespace

const float* lth::conv2d_grad_image(const ConvJob& j, int64_t b, const float* gyb, float* partial, bool accumulate,
                                    float* scratch) {
  gyb = output_grad(j, b, gyb);
  if (partial) {
    const int64_t ckk = j.ckk(), hw = j.hw();
    const GemmArgs g{gyb, columns(j, b), partial, j.cout, hw, ckk, false, true, accumulate};
    lth::nt_product(j.cout, ckk, hw)(g, 0, j.cout, 0, ckk, scratch);
  }
  return gyb;
}

void lth::conv2d_add_grads(const ConvJob& j, int64_t parts, float* gw, float* gb) {
  if (gb) lth::add_channel_sums(j.biasSums, j.n, j.cout, gb);
  if (!gw) return;
  const int64_t wsize = j.cout * j.ckk();
  for (int64_t i = 0; i < wsize; i++) {
    float s = j.partials[i];
    for (int64_t p = 1; p < parts; p++) s += j.partials[p * wsize + i];
    gw[i] += s;
  }
}

bool lth::register_conv2d(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"conv2d", Conv2d}, {"conv2dBackward", Conv2dBackward}};
  return define_exports(env, exports, kExports);
}
