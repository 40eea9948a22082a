// The sequence kernels: the LSTM cell's gates and their gradient, row softmax (with a
// causal mask, for attention scores) and its gradient, and layer normalisation forward
// and backward. The GEMMs around them (the LSTM's x·W_ihᵀ and h·W_hhᵀ, attention's Q·Kᵀ
// and P·V) are matmul calls; these are the elementwise and per-row parts that sit between,
// which in TypeScript cost as much as the GEMMs of a char-level LSTM step. Serial loops in
// float (double for the per-row sums), on the calling thread; the reference backend is the
// oracle.
//
// exp, tanh and the sigmoid are computed with fast_exp below rather than libm: libm's expf
// and tanhf are scalar calls (about 20 ns each, five per LSTM unit and step: the cell cost
// more than the step's GEMMs), while fast_exp is branch-free arithmetic the compiler
// vectorises at the baseline ISA.

#include <cmath>
#include <cstdint>
#include <cstring>

#include "bindings.h"
#include "ftz.h"
#include "napi_args.h"

// The clamps in fast_exp are comparisons, which GCC will not turn into vector selects while
// a comparison may trap; these kernels never enable float traps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace {

using lth::ArgSpec;
using lth::Args;
using lth::FtzScope;
using lth::undefined_value;
namespace arg = lth::arg;

// e^x to about 2 ulp for x in [-87, 88] (clamped outside; NaN stays NaN, through r): Cephes'
// expf, x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7 polynomial, 2^n put in the exponent
// bits; n rounded by adding and subtracting 1.5·2^23, so the loop has no branch.
inline float fast_exp(float x) {
  const float c = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float fn = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (c - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)fn + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float v) { return 1.0f / (1.0f + fast_exp(-v)); }

// tanh(v) = 1 - 2 / (e^{2v} + 1): saturates to ±1, absolute error about 1e-7 near 0.
inline float fast_tanh(float v) { return 1.0f - 2.0f / (fast_exp(2.0f * v) + 1.0f); }

// lstmCell(gates, cPrev, c, h, n, hidden)
constexpr ArgSpec kLstmCellArgs[] = {arg::f32("gates"), arg::f32("cPrev"), arg::f32("c"),
                                     arg::f32("h"),     arg::dim("n"),     arg::dim("hidden")};

napi_value LstmCell(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "lstmCell", kLstmCellArgs);
  if (!a.ok()) return nullptr;
  const int64_t n = a[4].dim(), H = a[5].dim();
  a.need("gates", a[0].len, n, 4 * H, "n*4*hidden");
  a.need("cPrev", a[1].len, n, H, "n*hidden");
  a.need("c", a[2].len, n, H, "n*hidden");
  a.need("h", a[3].len, n, H, "n*hidden");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  float* gates = a[0].f32();
  float* __restrict c = a[2].f32();
  float* __restrict h = a[3].f32();
  const float* __restrict cPrev = a[1].f32();
  // Each pass is a plain loop over contiguous floats, which the compiler vectorises.
  for (int64_t b = 0; b < n; b++) {
    float* __restrict g = gates + b * 4 * H;
    for (int64_t j = 0; j < 2 * H; j++) g[j] = sigmoid(g[j]);
    for (int64_t j = 2 * H; j < 3 * H; j++) g[j] = fast_tanh(g[j]);
    for (int64_t j = 3 * H; j < 4 * H; j++) g[j] = sigmoid(g[j]);
    const int64_t o = b * H;
    for (int64_t j = 0; j < H; j++) c[o + j] = g[H + j] * cPrev[o + j] + g[j] * g[2 * H + j];
    for (int64_t j = 0; j < H; j++) h[o + j] = g[3 * H + j] * fast_tanh(c[o + j]);
  }
  return undefined_value(env);
}

// lstmCellBackward(gates, cPrev, c, gradH, gradC, gradGates, gradCPrev, n, hidden)
constexpr ArgSpec kLstmCellBackwardArgs[] = {arg::f32("gates"), arg::f32("cPrev"),     arg::f32("c"),
                                             arg::f32("gradH"), arg::f32("gradC"),     arg::f32("gradGates"),
                                             arg::f32("gradCPrev"), arg::dim("n"), arg::dim("hidden")};

napi_value LstmCellBackward(napi_env env, napi_callback_info info) {
  Args<9> a(env, info, "lstmCellBackward", kLstmCellBackwardArgs);
  if (!a.ok()) return nullptr;
  const int64_t n = a[7].dim(), H = a[8].dim();
  a.need("gates", a[0].len, n, 4 * H, "n*4*hidden");
  a.need("cPrev", a[1].len, n, H, "n*hidden");
  a.need("c", a[2].len, n, H, "n*hidden");
  a.need("gradH", a[3].len, n, H, "n*hidden");
  a.need("gradC", a[4].len, n, H, "n*hidden");
  a.need("gradGates", a[5].len, n, 4 * H, "n*4*hidden");
  a.need("gradCPrev", a[6].len, n, H, "n*hidden");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  const float* __restrict gates = a[0].f32();
  const float* __restrict cPrev = a[1].f32();
  const float* __restrict c = a[2].f32();
  const float* __restrict gradH = a[3].f32();
  float* __restrict gradGates = a[5].f32();
  // gradC and gradCPrev may be one array (each entry read before it is written): not restrict.
  const float* gradC = a[4].f32();
  float* gradCPrev = a[6].f32();
  for (int64_t b = 0; b < n; b++) {
    const float* __restrict g = gates + b * 4 * H;
    float* __restrict dg = gradGates + b * 4 * H;
    const int64_t o = b * H;
    float* dc = gradCPrev + o;
    // First the cell state's gradient (into gradCPrev, entry by entry over gradC), then the gates'.
    for (int64_t j = 0; j < H; j++) {
      const float og = g[3 * H + j], tc = fast_tanh(c[o + j]), gh = gradH[o + j];
      dg[3 * H + j] = gh * tc * og * (1 - og);
      dc[j] = gradC[o + j] + gh * og * (1 - tc * tc);
    }
    // One output per loop: with four interleaved stores the compiler leaves it scalar.
    for (int64_t j = 0; j < H; j++) dg[j] = dc[j] * g[2 * H + j] * g[j] * (1 - g[j]);
    for (int64_t j = 0; j < H; j++) dg[H + j] = dc[j] * cPrev[o + j] * g[H + j] * (1 - g[H + j]);
    for (int64_t j = 0; j < H; j++) dg[2 * H + j] = dc[j] * g[j] * (1 - g[2 * H + j] * g[2 * H + j]);
    for (int64_t j = 0; j < H; j++) dc[j] *= g[H + j];
  }
  return undefined_value(env);
}

// softmaxRows(x, out, rows, cols, causal)
constexpr ArgSpec kSoftmaxRowsArgs[] = {arg::f32("x"), arg::f32("out"), arg::dim("rows"), arg::dim("cols"),
                                        arg::flag("causal")};

napi_value SoftmaxRows(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "softmaxRows", kSoftmaxRowsArgs);
  if (!a.ok()) return nullptr;
  const int64_t rows = a[2].dim(), cols = a[3].dim();
  a.need("x", a[0].len, rows, cols, "rows*cols");
  a.need("out", a[1].len, rows, cols, "rows*cols");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  const float* x = a[0].f32();
  float* out = a[1].f32();
  const bool causal = a[4].flag;
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* yr = out + r * cols;
    const int64_t seen = causal ? r % cols + 1 : cols;
    float mx = -INFINITY;
    for (int64_t j = 0; j < seen; j++) {
      if (xr[j] > mx || xr[j] != xr[j]) mx = xr[j];  // Math.max: NaN wins
      if (mx != mx) break;
    }
    double sum = 0;
    for (int64_t j = 0; j < seen; j++) yr[j] = fast_exp(xr[j] - mx);
    for (int64_t j = 0; j < seen; j++) sum += yr[j];
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < seen; j++) yr[j] *= inv;
    for (int64_t j = seen; j < cols; j++) yr[j] = 0;
  }
  return undefined_value(env);
}

// softmaxRowsBackward(y, gradOut, gradIn, rows, cols)
constexpr ArgSpec kSoftmaxRowsBackwardArgs[] = {arg::f32("y"), arg::f32("gradOut"), arg::f32("gradIn"),
                                                arg::dim("rows"), arg::dim("cols")};

napi_value SoftmaxRowsBackward(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "softmaxRowsBackward", kSoftmaxRowsBackwardArgs);
  if (!a.ok()) return nullptr;
  const int64_t rows = a[3].dim(), cols = a[4].dim();
  a.need("y", a[0].len, rows, cols, "rows*cols");
  a.need("gradOut", a[1].len, rows, cols, "rows*cols");
  a.need("gradIn", a[2].len, rows, cols, "rows*cols");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  const float *y = a[0].f32(), *go = a[1].f32();
  float* gi = a[2].f32();
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    double dot = 0;
    for (int64_t j = 0; j < cols; j++) dot += (double)go[o + j] * y[o + j];
    const float d = (float)dot;
    for (int64_t j = 0; j < cols; j++) gi[o + j] = y[o + j] * (go[o + j] - d);
  }
  return undefined_value(env);
}

// layerNorm(x, gamma, beta, out, mean, rstd, rows, cols, eps)
constexpr ArgSpec kLayerNormArgs[] = {arg::f32("x"),    arg::f32("gamma"), arg::f32("beta"),
                                      arg::f32("out"),  arg::f32("mean"),  arg::f32("rstd"),
                                      arg::dim("rows"), arg::dim("cols"),  arg::number("eps")};

napi_value LayerNorm(napi_env env, napi_callback_info info) {
  Args<9> a(env, info, "layerNorm", kLayerNormArgs);
  if (!a.ok()) return nullptr;
  const int64_t rows = a[6].dim(), cols = a[7].dim();
  a.need("x", a[0].len, rows, cols, "rows*cols");
  a.need("gamma", a[1].len, cols, 1, "cols");
  a.need("beta", a[2].len, cols, 1, "cols");
  a.need("out", a[3].len, rows, cols, "rows*cols");
  a.need("mean", a[4].len, rows, 1, "rows");
  a.need("rstd", a[5].len, rows, 1, "rows");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  const float *x = a[0].f32(), *gamma = a[1].f32(), *beta = a[2].f32();
  float *out = a[3].f32(), *mean = a[4].f32(), *rstd = a[5].f32();
  const double eps = a[8].num;
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    double s = 0;
    for (int64_t j = 0; j < cols; j++) s += xr[j];
    const double mu = s / cols;
    double v = 0;
    for (int64_t j = 0; j < cols; j++) v += (xr[j] - mu) * (xr[j] - mu);
    const float rs = (float)(1 / std::sqrt(v / cols + eps)), m = (float)mu;
    mean[r] = m;
    rstd[r] = rs;
    float* yr = out + r * cols;
    for (int64_t j = 0; j < cols; j++) yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j];
  }
  return undefined_value(env);
}

// layerNormBackward(x, gamma, mean, rstd, gradOut, gradX, gradGamma | null, gradBeta | null, rows, cols)
constexpr ArgSpec kLayerNormBackwardArgs[] = {arg::f32("x"),       arg::f32("gamma"), arg::f32("mean"),
                                              arg::f32("rstd"),    arg::f32("gradOut"), arg::f32("gradX"),
                                              arg::f32_or_null("gradGamma"), arg::f32_or_null("gradBeta"),
                                              arg::dim("rows"),    arg::dim("cols")};

napi_value LayerNormBackward(napi_env env, napi_callback_info info) {
  Args<10> a(env, info, "layerNormBackward", kLayerNormBackwardArgs);
  if (!a.ok()) return nullptr;
  const int64_t rows = a[8].dim(), cols = a[9].dim();
  a.need("x", a[0].len, rows, cols, "rows*cols");
  a.need("gamma", a[1].len, cols, 1, "cols");
  a.need("mean", a[2].len, rows, 1, "rows");
  a.need("rstd", a[3].len, rows, 1, "rows");
  a.need("gradOut", a[4].len, rows, cols, "rows*cols");
  a.need("gradX", a[5].len, rows, cols, "rows*cols");
  if (a[6].present) a.need("gradGamma", a[6].len, cols, 1, "cols");
  if (a[7].present) a.need("gradBeta", a[7].len, cols, 1, "cols");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  const float *x = a[0].f32(), *gamma = a[1].f32(), *mean = a[2].f32(), *rstd = a[3].f32(), *go = a[4].f32();
  float *gx = a[5].f32(), *gg = a[6].present ? a[6].f32() : nullptr, *gb = a[7].present ? a[7].f32() : nullptr;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    const float mu = mean[r], rs = rstd[r];
    double sd = 0, sdx = 0;
    for (int64_t j = 0; j < cols; j++) {
      const float d = go[o + j] * gamma[j], xh = (x[o + j] - mu) * rs;
      sd += d;
      sdx += (double)d * xh;
    }
    const float msd = (float)(sd / cols), msdx = (float)(sdx / cols);
    for (int64_t j = 0; j < cols; j++) {
      const float xh = (x[o + j] - mu) * rs;
      gx[o + j] += rs * (go[o + j] * gamma[j] - msd - xh * msdx);
      if (gg) gg[j] += go[o + j] * xh;
      if (gb) gb[j] += go[o + j];
    }
  }
  return undefined_value(env);
}

}  // namespace

bool lth::register_seq(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"lstmCell", LstmCell},       {"lstmCellBackward", LstmCellBackward},   {"softmaxRows", SoftmaxRows},
      {"softmaxRowsBackward", SoftmaxRowsBackward}, {"layerNorm", LayerNorm}, {"layerNormBackward", LayerNormBackward},
  };
  return define_exports(env, exports, kExports);
}
