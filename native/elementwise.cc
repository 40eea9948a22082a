// The dense kernels other than GEMM and their bindings: biasAct, reluBackward, sumRows,
// softmaxXent, countCorrect, the optimisers adam and sgd, applyMask, and the data-set
// helpers gatherRows and adviseHugePages (elementwise.h: the parts the fused MLP steps
// share). The arithmetic runs on the kernel table of the path in use (gK);
// softmaxXent and countCorrect are plain C++ here. Optimiser updates of 64k+ elements and
// big gathers are split across the pool; elementwise, so the values do not depend on the
// split.

#include "elementwise.h"

#include <cmath>
#include <cstring>
#include <vector>

#include <sys/mman.h>

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "napi_args.h"
#include "parallel.h"
#include "pool.h"

void lth::update_params(const UpdateRule& r, float* p, float* g, float* s0, float* s1, const float* mask, int64_t n) {
  if (n <= 0) return;
  if (r.adam) {
    const double stepSize = r.lr / (1 - std::pow(r.beta1, r.step));
    const double invBc2 = 1 / std::sqrt(1 - std::pow(r.beta2, r.step));
    gK->adam(p, g, s0, s1, mask, n, (float)r.beta1, (float)r.beta2, (float)(1 - r.beta1), (float)(1 - r.beta2),
             (float)stepSize, (float)invBc2, (float)r.eps);
  } else {
    gK->sgd(p, g, s0, mask, n, (float)r.lr, (float)r.momentum, (float)r.weightDecay);
  }
}

double lth::softmax_xent(const float* logits, const int32_t* labels, int64_t rows, int64_t cols, float* grad,
                         double scale) {
  // Double precision sums, in the reference's order.
  double total = 0;
  std::vector<double> ebuf;
  double stackBuf[256];
  double* e = stackBuf;
  if (cols > 256) {
    ebuf.resize((size_t)cols);
    e = ebuf.data();
  }
  for (int64_t i = 0; i < rows; i++) {
    const float* x = logits + i * cols;
    double mx = -INFINITY;
    for (int64_t j = 0; j < cols; j++) {
      const double v = x[j];
      if (v > mx || v != v) mx = v;  // Math.max: NaN wins
      if (mx != mx) break;
    }
    double sum = 0;
    // exp in float (the logits are float; its error, < 1 ulp, is below the loss's tolerance)
    // is several times faster than in double; the sum and the log stay in double.
    const float mxf = (float)mx;
    for (int64_t j = 0; j < cols; j++) sum += (e[j] = (double)std::exp(x[j] - mxf));
    const int32_t label = labels[i];
    total += std::log(sum) - ((double)x[label] - mx);
    if (grad) {
      float* gr = grad + i * cols;
      for (int64_t j = 0; j < cols; j++) gr[j] = (float)((e[j] / sum - (j == label ? 1.0 : 0.0)) * scale);
    }
  }
  return total;
}

int64_t lth::count_correct(const float* logits, const int32_t* labels, int64_t rows, int64_t cols) {
  int64_t correct = 0;
  for (int64_t i = 0; i < rows; i++) {
    const float* x = logits + i * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < cols; j++)
      if (x[j] > x[best]) best = j;
    if (best == labels[i]) correct++;
  }
  return correct;
}

namespace {

// Below this many elements an optimiser update runs on the calling thread alone.
constexpr int64_t kParallelMinElementwise = 65536;
// From this many rows a gatherRows call is split across the pool (in whole rows).
constexpr int64_t kParallelMinGatherRows = 32;
// Parts per thread of a parallel elementwise kernel.
constexpr int kElementwiseChunks = 4;

// Runs f(begin, end) over [0, n) in parts of whole 64-byte lines, on the pool when n
// is at least minParallel.
template <class F>
void parallel_range(int64_t n, int64_t minParallel, const F& f) {
  const int threads = lth::thread_count();
  if (threads > 1 && n >= minParallel) {
    struct Job {
      const F* f;
      int64_t n;
      int parts;
    } job{&f, n, threads * kElementwiseChunks};
    if (lth::run_parts_scratch(
            threads, job.parts,
            [](void* ctx, int part, float*) {
              const Job& j = *static_cast<const Job*>(ctx);
              const int64_t b = (j.n * part / j.parts) & ~(int64_t)15;
              const int64_t e = part + 1 == j.parts ? j.n : (j.n * (part + 1) / j.parts) & ~(int64_t)15;
              if (b < e) (*j.f)(b, e);
            },
            &job, nullptr))
      return;
  }
  f(0, n);
}

}  // namespace

void lth::update_params_split(const UpdateRule& r, float* p, float* g, float* s0, float* s1, const float* mask,
                              int64_t n) {
  parallel_range(n, kParallelMinElementwise, [&](int64_t b, int64_t e) {
    update_params(r, p + b, g + b, s0 + b, s1 ? s1 + b : nullptr, mask ? mask + b : nullptr, e - b);
  });
}

void lth::gather_rows(const float* src, int64_t rowSize, const int32_t* idx, int64_t count, float* dst) {
  const size_t bytes = (size_t)rowSize * sizeof(float);
  parallel_range(count, kParallelMinGatherRows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) std::memcpy(dst + r * rowSize, src + (int64_t)idx[r] * rowSize, bytes);
  });
}

namespace {

using lth::ArgSpec;
using lth::Args;
using lth::FtzScope;
using lth::gK;
using lth::undefined_value;
namespace arg = lth::arg;

// biasAct(x, bias, out, rows, cols, relu): out = act(x + bias) per row.
constexpr ArgSpec kBiasActArgs[] = {arg::f32("x"),    arg::f32("bias"), arg::f32("out"),
                                    arg::dim("rows"), arg::dim("cols"), arg::flag("relu")};

napi_value BiasAct(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "biasAct", kBiasActArgs);
  if (!a.ok()) return nullptr;
  const int64_t rows = a[3].dim(), cols = a[4].dim();
  a.need("x", a[0].len, rows, cols, "rows*cols");
  a.need("bias", a[1].len, cols, 1, "cols");
  a.need("out", a[2].len, rows, cols, "rows*cols");
  if (!a.ok()) return nullptr;
  if (rows && cols) {
    FtzScope ftz;
    gK->biasAct(a[0].f32(), a[1].f32(), a[2].f32(), rows, cols, a[5].flag);
  }
  return undefined_value(env);
}

// reluBackward(gradOut, y, gradIn, n): gradIn = y > 0 ? gradOut : 0.
constexpr ArgSpec kReluBackwardArgs[] = {arg::f32("gradOut"), arg::f32("y"), arg::f32("gradIn"), arg::dim("n")};

napi_value ReluBackward(napi_env env, napi_callback_info info) {
  Args<4> a(env, info, "reluBackward", kReluBackwardArgs);
  if (!a.ok()) return nullptr;
  const int64_t n = a[3].dim();
  a.need("gradOut", a[0].len, n, 1, "n");
  a.need("y", a[1].len, n, 1, "n");
  a.need("gradIn", a[2].len, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    FtzScope ftz;
    gK->reluBackward(a[0].f32(), a[1].f32(), a[2].f32(), n);
  }
  return undefined_value(env);
}

// sumRows(x, out, rows, cols, accumulate): out (+)= the column sums of x, in parts of whole
// groups of 64 columns over the pool (each column's sum in row order whichever part runs
// it).
constexpr ArgSpec kSumRowsArgs[] = {arg::f32("x"), arg::f32("out"), arg::dim("rows"), arg::dim("cols"),
                                    arg::flag("accumulate")};

napi_value SumRows(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "sumRows", kSumRowsArgs);
  if (!a.ok()) return nullptr;
  const int64_t rows = a[2].dim(), cols = a[3].dim();
  a.need("x", a[0].len, rows, cols, "rows*cols");
  a.need("out", a[1].len, cols, 1, "cols");
  if (!a.ok()) return nullptr;
  if (cols) {
    FtzScope ftz;
    const float* x = a[0].f32();
    float* out = a[1].f32();
    const bool accumulate = a[4].flag;
    constexpr int64_t kGroup = 64;
    lth::parallel_units((cols + kGroup - 1) / kGroup, rows * cols, [&](int64_t g0, int64_t g1) {
      const int64_t c0 = g0 * kGroup, c1 = g1 * kGroup < cols ? g1 * kGroup : cols;
      gK->sumRows(x + c0, out + c0, rows, c1 - c0, cols, accumulate);
    });
  }
  return undefined_value(env);
}

// softmaxXent(logits, labels, rows, cols, grad | null, gradScale) -> the summed loss.
constexpr ArgSpec kSoftmaxXentArgs[] = {arg::f32("logits"), arg::i32("labels"),        arg::dim("rows"),
                                        arg::dim("cols"),   arg::f32_or_null("grad"), arg::number("gradScale")};

napi_value SoftmaxXent(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "softmaxXent", kSoftmaxXentArgs);
  if (!a.ok()) return nullptr;
  const float* logits = a[0].f32();
  const int32_t* labels = a[1].i32();
  const int64_t rows = a[2].dim(), cols = a[3].dim();
  const bool hasGrad = a[4].present;
  float* grad = a[4].f32();
  const double scale = a[5].num;
  a.need("logits", a[0].len, rows, cols, "rows*cols");
  a.need("labels", a[1].len, rows, 1, "rows");
  if (hasGrad) a.need("grad", a[4].len, rows, cols, "rows*cols");
  if (!a.ok()) return nullptr;
  for (int64_t i = 0; i < rows; i++) {
    if (labels[i] < 0 || labels[i] >= cols) {
      a.fail(true, "labels[%lld] = %d is outside [0, %lld)", (long long)i, labels[i], (long long)cols);
      return nullptr;
    }
  }
  return lth::number_value(env, lth::softmax_xent(logits, labels, rows, cols, hasGrad ? grad : nullptr, scale));
}

// countCorrect(logits, labels, rows, cols) -> the rows whose first maximum is their label.
constexpr ArgSpec kCountCorrectArgs[] = {arg::f32("logits"), arg::i32("labels"), arg::dim("rows"), arg::dim("cols")};

napi_value CountCorrect(napi_env env, napi_callback_info info) {
  Args<4> a(env, info, "countCorrect", kCountCorrectArgs);
  if (!a.ok()) return nullptr;
  const float* logits = a[0].f32();
  const int32_t* labels = a[1].i32();
  const int64_t rows = a[2].dim(), cols = a[3].dim();
  a.need("logits", a[0].len, rows, cols, "rows*cols");
  a.need("labels", a[1].len, rows, 1, "rows");
  if (!a.ok()) return nullptr;
  return lth::number_value(env, (double)lth::count_correct(logits, labels, rows, cols));
}

// adam(param, grad, m, v, mask | null, n, lr, beta1, beta2, eps, step)
constexpr ArgSpec kAdamArgs[] = {arg::f32("param"),  arg::f32("grad"),   arg::f32("m"),     arg::f32("v"),
                                 arg::f32_or_null("mask"), arg::dim("n"), arg::number("lr"), arg::number("beta1"),
                                 arg::number("beta2"), arg::number("eps"), arg::number("step")};

napi_value Adam(napi_env env, napi_callback_info info) {
  Args<11> a(env, info, "adam", kAdamArgs);
  if (!a.ok()) return nullptr;
  float *p = a[0].f32(), *g = a[1].f32(), *m = a[2].f32(), *v = a[3].f32();
  const bool hasMask = a[4].present;
  const int64_t n = a[5].dim();
  a.need("param", a[0].len, n, 1, "n");
  a.need("grad", a[1].len, n, 1, "n");
  a.need("m", a[2].len, n, 1, "n");
  a.need("v", a[3].len, n, 1, "n");
  if (hasMask) a.need("mask", a[4].len, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    const lth::UpdateRule rule{true, a[6].num, a[7].num, a[8].num, a[9].num, a[10].num, 0, 0};
    const float* mk = hasMask ? a[4].f32() : nullptr;
    FtzScope ftz;
    lth::update_params_split(rule, p, g, m, v, mk, n);
  }
  return undefined_value(env);
}

// sgd(param, grad, buf, mask | null, n, lr, momentum, weightDecay)
constexpr ArgSpec kSgdArgs[] = {arg::f32("param"), arg::f32("grad"), arg::f32("buf"),         arg::f32_or_null("mask"),
                                arg::dim("n"),     arg::number("lr"), arg::number("momentum"), arg::number("weightDecay")};

napi_value Sgd(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "sgd", kSgdArgs);
  if (!a.ok()) return nullptr;
  float *p = a[0].f32(), *g = a[1].f32(), *buf = a[2].f32();
  const bool hasMask = a[3].present;
  const int64_t n = a[4].dim();
  a.need("param", a[0].len, n, 1, "n");
  a.need("grad", a[1].len, n, 1, "n");
  a.need("buf", a[2].len, n, 1, "n");
  if (hasMask) a.need("mask", a[3].len, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    const lth::UpdateRule rule{false, a[5].num, 0, 0, 0, 0, a[6].num, a[7].num};
    const float* mk = hasMask ? a[3].f32() : nullptr;
    FtzScope ftz;
    lth::update_params_split(rule, p, g, buf, nullptr, mk, n);
  }
  return undefined_value(env);
}

// applyMask(x, mask, n): x = mask == 0 ? 0 : x.
constexpr ArgSpec kApplyMaskArgs[] = {arg::f32("x"), arg::f32("mask"), arg::dim("n")};

napi_value ApplyMask(napi_env env, napi_callback_info info) {
  Args<3> a(env, info, "applyMask", kApplyMaskArgs);
  if (!a.ok()) return nullptr;
  const int64_t n = a[2].dim();
  a.need("x", a[0].len, n, 1, "n");
  a.need("mask", a[1].len, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    FtzScope ftz;
    gK->applyMask(a[0].f32(), a[1].f32(), n);
  }
  return undefined_value(env);
}

// gatherRows(src, rowSize, indices, from, count, dst): the rows of a training set named by
// an epoch's permutation. They are scattered over a large array, so each copy waits on
// memory; two threads keep twice as many rows in flight.
constexpr ArgSpec kGatherRowsArgs[] = {arg::f32("src"),  arg::dim("rowSize", 1), arg::i32("indices"),
                                       arg::dim("from"), arg::dim("count"),      arg::f32("dst")};

napi_value GatherRows(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "gatherRows", kGatherRowsArgs);
  if (!a.ok()) return nullptr;
  const float* src = a[0].f32();
  const int64_t rowSize = a[1].dim();
  const int32_t* idx = a[2].i32();
  const int64_t from = a[3].dim(), count = a[4].dim();
  float* dst = a[5].f32();
  a.need("indices", a[2].len, from + count, 1, "from + count");
  a.need("dst", a[5].len, count, rowSize, "count*rowSize");
  if (!a.ok()) return nullptr;
  const int64_t rows = (int64_t)a[0].len / rowSize;
  for (int64_t b = 0; b < count; b++)
    if (idx[from + b] < 0 || idx[from + b] >= rows) {
      a.fail(true, "indices[%lld] = %d is not a row of src (%lld rows)", (long long)(from + b), idx[from + b],
             (long long)rows);
      return nullptr;
    }
  lth::gather_rows(src, rowSize, idx + from, count, dst);
  return undefined_value(env);
}

// adviseHugePages(array) -> boolean: asks the kernel to back the 2 MiB-aligned interior of
// a Float32Array with 2 MiB pages (madvise MADV_HUGEPAGE). Pages not yet touched get
// them when first written, so call it on a fresh array before filling it. False where
// the system has no such pages or refuses.
constexpr ArgSpec kAdviseHugePagesArgs[] = {arg::f32("array")};

napi_value AdviseHugePages(napi_env env, napi_callback_info info) {
  Args<1> a(env, info, "adviseHugePages", kAdviseHugePagesArgs);
  if (!a.ok()) return nullptr;
  bool ok = false;
#ifdef MADV_HUGEPAGE
  void* data = a[0].data;
  const uintptr_t huge = (uintptr_t)2 << 20, p0 = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (p0 + huge - 1) & ~(huge - 1), hi = (p0 + a[0].len * 4) & ~(huge - 1);
  if (data && hi > lo) ok = madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0;
#endif
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

}  // namespace

bool lth::register_elementwise(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"biasAct", BiasAct}, {"reluBackward", ReluBackward}, {"sumRows", SumRows},
      {"softmaxXent", SoftmaxXent}, {"countCorrect", CountCorrect}, {"gatherRows", GatherRows},
      {"adam", Adam}, {"sgd", Sgd}, {"applyMask", ApplyMask},
      {"adviseHugePages", AdviseHugePages},
  };
  return define_exports(env, exports, kExports);
}
