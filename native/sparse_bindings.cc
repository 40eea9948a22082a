// The bindings of the per-layer sparse kernels (see native/README.md, "Sparse kernels"):
// sparseForward, sparseInputGrad, sparseWeightGrad (+ bias gradient), toPanels and
// fromPanels. A pattern argument is an object made by sparsePattern, validated when it
// was built, so these check only their dense buffers. Weight values and gradients are
// packed per nonzero in the pattern's order; activations are in panels (sparse_kernels.h).

#include "bindings.h"
#include "ftz.h"
#include "napi_args.h"
#include "sparse_kernels.h"

namespace {

using lth::ArgReader;
using lth::ArgSpec;
using lth::Args;
using lth::FtzScope;
using lth::gS;
using lth::overlaps;
using lth::panel_cols;
using lth::Pattern;
using lth::undefined_value;
namespace arg = lth::arg;

// Checks the length of an activation buffer [features, ld] in panels.
void check_act(ArgReader& a, const char* name, size_t len, int64_t features, int64_t ld) {
  a.need(name, len, features, panel_cols(ld), "features*panelCols(ld)");
}

void check_ld(ArgReader& a, int64_t n, int64_t ld) {
  if (a.ok() && (ld % 16 != 0 || ld == 0)) a.fail(true, "ld must be a positive multiple of 16, got %lld", (long long)ld);
  if (a.ok() && n > ld) a.fail(true, "n = %lld must be <= ld = %lld", (long long)n, (long long)ld);
}

// sparseForward(pattern, vals, inT, outT, bias | null, n, ld, relu)
constexpr ArgSpec kSparseForwardArgs[] = {lth::pattern_arg(),      arg::f32("vals"), arg::f32("inT"), arg::f32("outT"),
                                          arg::f32_or_null("bias"), arg::dim("n"),    arg::dim("ld"),  arg::flag("relu")};

napi_value SparseForward(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "sparseForward", kSparseForwardArgs);
  if (!a.ok()) return nullptr;
  const Pattern* p = a[0].handle<Pattern>();
  const float *vals = a[1].f32(), *inT = a[2].f32(), *bias = a[4].f32();
  float* outT = a[3].f32();
  const size_t lv = a[1].len, lin = a[2].len, lout = a[3].len;
  const bool hasBias = a[4].present;
  const int64_t n = a[5].dim(), ld = a[6].dim();
  check_ld(a, n, ld);
  if (!a.ok()) return nullptr;
  a.need("vals", lv, p->nnz, 1, "nnz");
  check_act(a, "inT", lin, p->cols, ld);
  check_act(a, "outT", lout, p->rows, ld);
  if (hasBias) a.need("bias", a[4].len, p->rows, 1, "rows");
  if (a.ok() && (overlaps(outT, lout * 4, inT, lin * 4) || overlaps(outT, lout * 4, vals, lv * 4)))
    a.fail(true, "outT must not share memory with inT or vals");
  if (!a.ok()) return nullptr;
  if (p->rows == 0) return undefined_value(env);
  FtzScope ftz;
  lth::sparse_forward(*p, vals, inT, outT, hasBias ? bias : nullptr, n, ld, a[7].flag);
  return undefined_value(env);
}

// sparseInputGrad(pattern, vals, gyT, gxT, ld)
constexpr ArgSpec kSparseInputGradArgs[] = {lth::pattern_arg(), arg::f32("vals"), arg::f32("gyT"), arg::f32("gxT"),
                                            arg::dim("ld")};

napi_value SparseInputGrad(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "sparseInputGrad", kSparseInputGradArgs);
  if (!a.ok()) return nullptr;
  const Pattern* p = a[0].handle<Pattern>();
  const float *vals = a[1].f32(), *gyT = a[2].f32();
  float* gxT = a[3].f32();
  const size_t lv = a[1].len, lg = a[2].len, lx = a[3].len;
  const int64_t ld = a[4].dim();
  check_ld(a, 0, ld);
  if (!a.ok()) return nullptr;
  a.need("vals", lv, p->nnz, 1, "nnz");
  check_act(a, "gyT", lg, p->rows, ld);
  check_act(a, "gxT", lx, p->cols, ld);
  if (a.ok() && (overlaps(gxT, lx * 4, gyT, lg * 4) || overlaps(gxT, lx * 4, vals, lv * 4)))
    a.fail(true, "gxT must not share memory with gyT or vals");
  if (!a.ok()) return nullptr;
  if (p->cols == 0) return undefined_value(env);
  FtzScope ftz;
  lth::sparse_input_grad(*p, vals, gyT, gxT, ld);
  return undefined_value(env);
}

// sparseWeightGrad(pattern, gyT, xT, gvals | null, gbias | null, ld)
constexpr ArgSpec kSparseWeightGradArgs[] = {lth::pattern_arg(),        arg::f32("gyT"),           arg::f32("xT"),
                                             arg::f32_or_null("gvals"), arg::f32_or_null("gbias"), arg::dim("ld")};

napi_value SparseWeightGrad(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "sparseWeightGrad", kSparseWeightGradArgs);
  if (!a.ok()) return nullptr;
  const Pattern* p = a[0].handle<Pattern>();
  const float *gyT = a[1].f32(), *xT = a[2].f32();
  float *gvals = a[3].f32(), *gbias = a[4].f32();
  const size_t lg = a[1].len, lx = a[2].len, lv = a[3].len, lb = a[4].len;
  const bool hasVals = a[3].present, hasBias = a[4].present;
  const int64_t ld = a[5].dim();
  check_ld(a, 0, ld);
  if (!a.ok()) return nullptr;
  check_act(a, "gyT", lg, p->rows, ld);
  check_act(a, "xT", lx, p->cols, ld);
  if (hasVals) a.need("gvals", lv, p->nnz, 1, "nnz");
  if (hasBias) a.need("gbias", lb, p->rows, 1, "rows");
  for (float* out : {hasVals ? gvals : nullptr, hasBias ? gbias : nullptr}) {
    const size_t bytes = (out == gvals ? lv : lb) * 4;
    if (a.ok() && out && (overlaps(out, bytes, gyT, lg * 4) || overlaps(out, bytes, xT, lx * 4)))
      a.fail(true, "gvals and gbias must not share memory with gyT or xT");
  }
  if (!a.ok()) return nullptr;
  if (p->rows == 0 || (!hasVals && !hasBias)) return undefined_value(env);
  FtzScope ftz;
  lth::sparse_weight_grad(*p, gyT, xT, hasVals ? gvals : nullptr, hasBias ? gbias : nullptr, ld);
  return undefined_value(env);
}

// toPanels(x, out, n, features, ld): x [n, features] → out in panels, zero padded.
constexpr ArgSpec kToPanelsArgs[] = {arg::f32("x"), arg::f32("out"), arg::dim("n"), arg::dim("features"), arg::dim("ld")};

napi_value ToPanels(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "toPanels", kToPanelsArgs);
  if (!a.ok()) return nullptr;
  const float* x = a[0].f32();
  float* out = a[1].f32();
  const size_t lx = a[0].len, lo = a[1].len;
  const int64_t n = a[2].dim(), features = a[3].dim(), ld = a[4].dim();
  check_ld(a, n, ld);
  a.need("x", lx, n, features, "n*features");
  check_act(a, "out", lo, features, ld);
  if (a.ok() && overlaps(out, lo * 4, x, lx * 4)) a.fail(true, "out must not share memory with x");
  if (!a.ok()) return nullptr;
  if (features == 0) return undefined_value(env);
  FtzScope ftz;
  gS->toPanels(x, out, n, features, ld);
  return undefined_value(env);
}

// fromPanels(panels, y, n, features, ld, accumulate): y [n, features] (+)= the panels.
constexpr ArgSpec kFromPanelsArgs[] = {arg::f32("panels"),   arg::f32("y"),  arg::dim("n"),
                                       arg::dim("features"), arg::dim("ld"), arg::flag("accumulate")};

napi_value FromPanels(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "fromPanels", kFromPanelsArgs);
  if (!a.ok()) return nullptr;
  const float* in = a[0].f32();
  float* y = a[1].f32();
  const size_t lp = a[0].len, ly = a[1].len;
  const int64_t n = a[2].dim(), features = a[3].dim(), ld = a[4].dim();
  check_ld(a, n, ld);
  check_act(a, "panels", lp, features, ld);
  a.need("y", ly, n, features, "n*features");
  if (a.ok() && overlaps(y, ly * 4, in, lp * 4)) a.fail(true, "y must not share memory with panels");
  if (!a.ok()) return nullptr;
  if (features == 0 || n == 0) return undefined_value(env);
  FtzScope ftz;
  gS->fromPanels(in, y, n, features, ld, a[5].flag);
  return undefined_value(env);
}

}  // namespace

bool lth::register_sparse(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"sparseForward", SparseForward}, {"sparseInputGrad", SparseInputGrad}, {"sparseWeightGrad", SparseWeightGrad},
      {"toPanels", ToPanels},           {"fromPanels", FromPanels},
  };
  return define_exports(env, exports, kExports);
}
