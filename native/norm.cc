// norm.cc: the batch-norm, residual-addition and average-pooling kernels of the native
// backend and their Node-API bindings: channelMoments, channelAffineAct,
// batchNormBackward, addAct, addActBackward, meanPlanes and meanPlanesBackward (the Backend
// methods of the same names, same argument order; src/backend/backend.ts documents them
// and src/backend/reference.ts is the oracle).
//
// They are memory-bound passes over NCHW activations. The batch-norm and average-pooling
// loops (norm_impl.h) are compiled twice, for AVX2 and for the baseline ISA, with the same
// results; the rest is baseline code. Reductions run in eight float lanes over one
// contiguous plane, and the lanes are added in double per plane, so a channel's sum over a
// batch loses no more than one plane's float rounding. Big calls other than channelMoments
// are split over the pool by whole channels or planes (parallel.h): results do not depend
// on the thread count.

#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "napi_args.h"
#include "parallel.h"

// The baseline copy's 8-float vectors never cross a non-inlined call.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

using lth::FtzScope;
using lth::parallel_units;

// One part's loops (norm_impl.h), per ISA.
struct NormKernels {
  void (*moments)(const float* x, int64_t n, int64_t ch, int64_t size, int64_t b, int64_t e, double* sums, float* mean,
                  float* var);
  void (*affine)(const float* x, const float* scale, const float* shift, const float* res, float* out, int64_t ch,
                 int64_t size, int64_t b, int64_t e, bool relu);
  void (*gradSums)(const float* x, const float* y, const float* gy, const float* mean, const float* scale,
                   const float* shift, int64_t n, int64_t ch, int64_t size, int64_t b, int64_t e, bool relu,
                   double* sums);
  void (*gradIn)(const float* x, const float* y, const float* gy, float* gx, float* gr, const float* mean,
                 const float* scale, const float* shift, const float* coef, int64_t ch, int64_t size, int64_t b,
                 int64_t e, bool relu, bool accX, bool accR);
  void (*mean)(const float* x, float* out, int64_t size, int64_t b, int64_t e);
};

#if defined(__x86_64__) || defined(__i386__)
#define LTH_NORM_X86 1
namespace avx2 {
#define LTH_NORM_TARGET __attribute__((target("avx2")))
#include "norm_impl.h"
#undef LTH_NORM_TARGET
}  // namespace avx2
#endif
namespace baseline {
#define LTH_NORM_TARGET
#include "norm_impl.h"
#undef LTH_NORM_TARGET
}  // namespace baseline

// The AVX2 copy on the AVX2 and AVX-512 paths (the GEMM's, switched by setSimd), else the
// baseline's: the same results either way.
const NormKernels& kernels() {
#ifdef LTH_NORM_X86
  if (lth::avx2_in_use()) return avx2::kTable;
#endif
  return baseline::kTable;
}

using lth::ArgSpec;
using lth::Args;
using lth::undefined_value;
namespace arg = lth::arg;
using u128 = unsigned __int128;

// channelMoments(x, mean, variance, n, channels, size)
constexpr ArgSpec kMomentsArgs[] = {arg::f32("x"), arg::f32("mean"),     arg::f32("variance"),
                                    arg::dim("n"), arg::dim("channels"), arg::dim("size")};

napi_value ChannelMoments(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "channelMoments", kMomentsArgs);
  if (!a.ok()) return nullptr;
  const float* x = a[0].f32();
  float *mean = a[1].f32(), *var = a[2].f32();
  const int64_t n = a[3].dim(), ch = a[4].dim(), size = a[5].dim();
  a.need("x", a[0].len, (u128)n * ch * size, "n*channels*size");
  a.need("mean", a[1].len, (u128)ch, "channels");
  a.need("variance", a[2].len, (u128)ch, "channels");
  if (a.ok() && ch > 0 && n * size == 0) a.fail(true, "n*size must be at least 1, got %lld", (long long)(n * size));
  if (!a.ok()) return nullptr;
  if (ch) {
    FtzScope ftz;
    const NormKernels& k = kernels();
    std::vector<double> sums(2 * ch, 0.0);
    // On the calling thread: in a training step x comes straight from the convolution
    // before, out of memory, and there one thread reads it faster than two splitting the
    // channels (ResNet-20's step takes 0.97-1.00 of the time it takes with the split,
    // VGG-16's the same either way; docs/performance.md, 2026-12-04), though two are
    // faster on data in cache.
    k.moments(x, n, ch, size, 0, ch, sums.data(), mean, var);
  }
  return undefined_value(env);
}

// channelAffineAct(x, scale, shift, residual, out, n, channels, size, relu)
constexpr ArgSpec kAffineArgs[] = {arg::f32("x"),   arg::f32("scale"), arg::f32("shift"),    arg::f32_or_null("residual"),
                                   arg::f32("out"), arg::dim("n"),     arg::dim("channels"), arg::dim("size"),
                                   arg::flag("relu")};

napi_value ChannelAffineAct(napi_env env, napi_callback_info info) {
  Args<9> a(env, info, "channelAffineAct", kAffineArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *scale = a[1].f32(), *shift = a[2].f32(), *res = a[3].f32();
  float* out = a[4].f32();
  const int64_t n = a[5].dim(), ch = a[6].dim(), size = a[7].dim();
  const bool relu = a[8].flag;
  const u128 total = (u128)n * ch * size;
  a.need("x", a[0].len, total, "n*channels*size");
  a.need("scale", a[1].len, (u128)ch, "channels");
  a.need("shift", a[2].len, (u128)ch, "channels");
  if (a[3].present) a.need("residual", a[3].len, total, "n*channels*size");
  a.need("out", a[4].len, total, "n*channels*size");
  if (!a.ok()) return nullptr;
  if (n && ch && size) {
    FtzScope ftz;
    const NormKernels& k = kernels();
    parallel_units(n * ch, (res ? 2 : 1) * n * ch * size,
                   [&](int64_t b, int64_t e) { k.affine(x, scale, shift, res, out, ch, size, b, e, relu); });
  }
  return undefined_value(env);
}

// batchNormBackward(x, y, gradOut, mean, invstd, weight, gradIn, gradWeight, gradBias, gradResidual, n, channels, size,
//                   training, relu, accumulateIn, accumulateResidual, shift)
constexpr ArgSpec kBnBackwardArgs[] = {
    arg::f32("x"),           arg::f32_or_null("y"),          arg::f32("gradOut"),  arg::f32("mean"),
    arg::f32("invstd"),      arg::f32("weight"),             arg::f32_or_null("gradIn"),
    arg::f32_or_null("gradWeight"), arg::f32_or_null("gradBias"), arg::f32_or_null("gradResidual"), arg::dim("n"),
    arg::dim("channels"),    arg::dim("size"),               arg::flag("training"), arg::flag("relu"),
    arg::flag("accumulateIn"), arg::flag("accumulateResidual"), arg::f32_or_null("shift")};

napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  Args<18> a(env, info, "batchNormBackward", kBnBackwardArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *y = a[1].f32(), *gy = a[2].f32(), *mean = a[3].f32(), *invstd = a[4].f32(),
              *w = a[5].f32();
  float *gx = a[6].f32(), *gw = a[7].f32(), *gb = a[8].f32(), *gr = a[9].f32();
  const bool hasGx = a[6].present, hasGw = a[7].present, hasGb = a[8].present, hasGr = a[9].present;
  const int64_t n = a[10].dim(), ch = a[11].dim(), size = a[12].dim();
  const bool training = a[13].flag, relu = a[14].flag, accX = a[15].flag, accR = a[16].flag;
  const u128 total = (u128)n * ch * size;
  a.need("x", a[0].len, total, "n*channels*size");
  const float* shift = a[17].present ? a[17].f32() : nullptr;
  if (relu && !a[1].present && !shift && a.ok()) a.fail(false, "y or shift must be a Float32Array with relu, got null");
  if (a[1].present) a.need("y", a[1].len, total, "n*channels*size");
  if (shift) a.need("shift", a[17].len, (u128)ch, "channels");
  a.need("gradOut", a[2].len, total, "n*channels*size");
  a.need("mean", a[3].len, (u128)ch, "channels");
  a.need("invstd", a[4].len, (u128)ch, "channels");
  a.need("weight", a[5].len, (u128)ch, "channels");
  if (hasGx) a.need("gradIn", a[6].len, total, "n*channels*size");
  if (hasGw) a.need("gradWeight", a[7].len, (u128)ch, "channels");
  if (hasGb) a.need("gradBias", a[8].len, (u128)ch, "channels");
  if (hasGr) a.need("gradResidual", a[9].len, total, "n*channels*size");
  if (a.ok() && hasGr && (lth::overlaps(gr, a[9].len * 4, gy, a[2].len * 4) || lth::overlaps(gr, a[9].len * 4, gx, hasGx ? a[6].len * 4 : 0)))
    a.fail(true, "gradResidual must not share memory with gradOut or gradIn");
  if (!a.ok()) return nullptr;
  if (ch > 0 && n * size > 0) {
    FtzScope ftz;
    const double m = (double)(n * size);
    // Per channel: the sums over the batch, then the input gradient's coefficients.
    std::vector<float> coef(hasGx || hasGr ? 3 * ch : 0);
    std::vector<double> sums(2 * ch, 0.0);
    // The affine pass's scale (weight·invstd, rounded to float as it was) for a mask from x.
    std::vector<float> scale(relu && !y ? ch : 0);
    for (size_t c = 0; c < scale.size(); c++) scale[c] = w[c] * invstd[c];
    const NormKernels& k = kernels();
    parallel_units(ch, n * ch * size, [&](int64_t b, int64_t e) {
      // A range of channels image by image, as channelMoments reads them.
      if (hasGx || hasGw || hasGb) k.gradSums(x, y, gy, mean, scale.data(), shift, n, ch, size, b, e, relu, sums.data());
      for (int64_t c = b; c < e; c++) {
        const float is = invstd[c];
        const double sg = sums[2 * c], sgx = sums[2 * c + 1] * is;
        if (hasGb) gb[c] += (float)sg;
        if (hasGw) gw[c] += (float)sgx;
        if (coef.empty()) continue;
        coef[3 * c] = w[c] * is;
        coef[3 * c + 1] = training ? (float)(sg / m) : 0.0f;
        coef[3 * c + 2] = training ? (float)(sgx / m) * is : 0.0f;
      }
    });
    // Then the gradients, plane by plane in memory order.
    if (!coef.empty())
      parallel_units(n * ch, (hasGr ? 3 : 2) * n * ch * size, [&](int64_t b, int64_t e) {
        k.gradIn(x, y, gy, hasGx ? gx : nullptr, hasGr ? gr : nullptr, mean, scale.data(), shift, coef.data(), ch, size, b, e,
                 relu, accX, accR);
      });
  }
  return undefined_value(env);
}

// addAct(a, b, out, n, relu)
constexpr ArgSpec kAddActArgs[] = {arg::f32("a"), arg::f32("b"), arg::f32("out"), arg::dim("n"), arg::flag("relu")};

// Elements per part of the elementwise kernels below.
constexpr int64_t kChunk = 1 << 14;

napi_value AddAct(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "addAct", kAddActArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *z = a[1].f32();
  float* out = a[2].f32();
  const int64_t n = a[3].dim();
  const bool relu = a[4].flag;
  a.need("a", a[0].len, (u128)n, "n");
  a.need("b", a[1].len, (u128)n, "n");
  a.need("out", a[2].len, (u128)n, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    FtzScope ftz;
    parallel_units((n + kChunk - 1) / kChunk, n, [&](int64_t b, int64_t e) {
      const int64_t lo = b * kChunk, hi = e * kChunk < n ? e * kChunk : n;
      if (relu) {
        for (int64_t i = lo; i < hi; i++) {
          const float v = x[i] + z[i];
          out[i] = v < 0 ? 0.0f : v;
        }
      } else {
        for (int64_t i = lo; i < hi; i++) out[i] = x[i] + z[i];
      }
    });
  }
  return undefined_value(env);
}

// addActBackward(gradOut, y, gradA, gradB, n, relu, accumulateA, accumulateB)
constexpr ArgSpec kAddActBackwardArgs[] = {arg::f32("gradOut"),      arg::f32_or_null("y"), arg::f32_or_null("gradA"),
                                           arg::f32_or_null("gradB"), arg::dim("n"),         arg::flag("relu"),
                                           arg::flag("accumulateA"),  arg::flag("accumulateB")};

// d[i] (+)= g[i] over [lo, hi), g = gradOut masked to y > 0 when relu: one plain
// vectorisable loop per case.
void add_grad(float* __restrict d, const float* __restrict gy, const float* __restrict y, int64_t lo, int64_t hi,
              bool relu, bool accumulate) {
  if (relu && accumulate)
    for (int64_t i = lo; i < hi; i++) {
      const float g = gy[i];
      d[i] += y[i] > 0 ? g : 0.0f;
    }
  else if (relu)
    for (int64_t i = lo; i < hi; i++) {
      const float g = gy[i];
      d[i] = y[i] > 0 ? g : 0.0f;
    }
  else if (accumulate)
    for (int64_t i = lo; i < hi; i++) d[i] += gy[i];
  else
    std::memcpy(d + lo, gy + lo, (size_t)(hi - lo) * sizeof(float));
}

napi_value AddActBackward(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "addActBackward", kAddActBackwardArgs);
  if (!a.ok()) return nullptr;
  const float *gy = a[0].f32(), *y = a[1].f32();
  float *ga = a[2].f32(), *gb = a[3].f32();
  const bool hasA = a[2].present, hasB = a[3].present;
  const int64_t n = a[4].dim();
  const bool relu = a[5].flag, accA = a[6].flag, accB = a[7].flag;
  a.need("gradOut", a[0].len, (u128)n, "n");
  if (relu && !a[1].present && a.ok()) a.fail(false, "y must be a Float32Array with relu, got null");
  if (a[1].present) a.need("y", a[1].len, (u128)n, "n");
  if (hasA) a.need("gradA", a[2].len, (u128)n, "n");
  if (hasB) a.need("gradB", a[3].len, (u128)n, "n");
  if (!a.ok()) return nullptr;
  if (n && (hasA || hasB)) {
    FtzScope ftz;
    parallel_units((n + kChunk - 1) / kChunk, n, [&](int64_t b, int64_t e) {
      const int64_t lo = b * kChunk, hi = e * kChunk < n ? e * kChunk : n;
      // gradA's range first, then gradB's: right when they are one array (a + a).
      if (hasA) add_grad(ga, gy, y, lo, hi, relu, accA);
      if (hasB) add_grad(gb, gy, y, lo, hi, relu, accB);
    });
  }
  return undefined_value(env);
}

// meanPlanes(x, out, planes, size) and meanPlanesBackward(gradOut, gradIn, planes, size)
constexpr ArgSpec kMeanPlanesArgs[] = {arg::f32("x"), arg::f32("out"), arg::dim("planes"), arg::dim("size", 1)};
constexpr ArgSpec kMeanPlanesBackwardArgs[] = {arg::f32("gradOut"), arg::f32("gradIn"), arg::dim("planes"), arg::dim("size", 1)};

napi_value MeanPlanes(napi_env env, napi_callback_info info) {
  Args<4> a(env, info, "meanPlanes", kMeanPlanesArgs);
  if (!a.ok()) return nullptr;
  const float* x = a[0].f32();
  float* out = a[1].f32();
  const int64_t planes = a[2].dim(), size = a[3].dim();
  a.need("x", a[0].len, (u128)planes * size, "planes*size");
  a.need("out", a[1].len, (u128)planes, "planes");
  if (!a.ok()) return nullptr;
  if (planes) {
    FtzScope ftz;
    const NormKernels& k = kernels();
    parallel_units(planes, planes * size, [&](int64_t b, int64_t e) { k.mean(x, out, size, b, e); });
  }
  return undefined_value(env);
}

napi_value MeanPlanesBackward(napi_env env, napi_callback_info info) {
  Args<4> a(env, info, "meanPlanesBackward", kMeanPlanesBackwardArgs);
  if (!a.ok()) return nullptr;
  const float* gy = a[0].f32();
  float* gx = a[1].f32();
  const int64_t planes = a[2].dim(), size = a[3].dim();
  a.need("gradOut", a[0].len, (u128)planes, "planes");
  a.need("gradIn", a[1].len, (u128)planes * size, "planes*size");
  if (!a.ok()) return nullptr;
  if (planes) {
    FtzScope ftz;
    parallel_units(planes, planes * size, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; p++) {
        const float g = (float)((double)gy[p] / (double)size);
        float* d = gx + p * size;
        for (int64_t k = 0; k < size; k++) d[k] += g;
      }
    });
  }
  return undefined_value(env);
}

}  // namespace

bool lth::register_norm(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"channelMoments", ChannelMoments}, {"channelAffineAct", ChannelAffineAct}, {"batchNormBackward", BatchNormBackward},
      {"addAct", AddAct},                 {"addActBackward", AddActBackward},     {"meanPlanes", MeanPlanes},
      {"meanPlanesBackward", MeanPlanesBackward},
  };
  return define_exports(env, exports, kExports);
}
