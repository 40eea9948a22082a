// The sequence kernels: an LSTM layer's recurrence (each step's h·W_hhᵀ and cell) and its
// gradient, row softmax (with a causal mask, for attention scores) and its gradient, layer
// normalisation forward and backward, and causal multi-head attention with its gradient.
// The LSTM's input product x·W_ihᵀ for all steps is one matmul call in TypeScript; the
// recurrence runs here, where a matmul and a cell call per step cost as much in packing
// W_hh and in calls as in work. Loops in float (double for the per-row sums); the cell's
// rows, layer norm's rows and attention's (sample, head) blocks share out over the pool
// (each block on one thread, its products over the causal half of the [T, T] scores only,
// by seq_impl.h's loops: a head's few features make the GEMM's packing and edge tiles cost
// as much as its arithmetic), the others run on the calling thread. The reference backend
// is the oracle.
//
// exp, tanh and the sigmoid are computed with exp_approx (seq_impl.h) rather than libm:
// libm's expf and tanhf are scalar calls (about 20 ns each, five per LSTM unit and step: the
// cell cost more than the step's GEMMs), while exp_approx is branch-free arithmetic the
// compiler vectorises. The elementwise loops (seq_impl.h) are compiled for AVX2 without FMA
// and for the baseline, with the same results.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "gemm.h"
#include "napi_args.h"
#include "parallel.h"
#include "pool.h"

// The baseline copy's 8-float vectors (seq_impl.h) never cross a non-inlined call.
#pragma GCC diagnostic ignored "-Wpsabi"

// The clamps in exp_approx are comparisons, which GCC will not turn into vector selects while
// a comparison may trap; these kernels never enable float traps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace {

using lth::ArgSpec;
using lth::Args;
using lth::FtzScope;
using lth::undefined_value;
using u128 = unsigned __int128;
namespace arg = lth::arg;

// The loops of seq_impl.h, per ISA.
struct SeqKernels {
  void (*cell)(float* gates, const float* cPrev, float* c, float* h, int64_t b0, int64_t b1, int64_t H);
  void (*cellBackward)(const float* gates, const float* cPrev, const float* c, const float* gradH, const float* gradC,
                       float* gradGates, float* gradCPrev, int64_t b0, int64_t b1, int64_t H);
  void (*row)(const float* x, float* y, int64_t cols, int64_t seen);  // softmax_row
  void (*rowBackward)(const float* y, const float* go, float* gi, int64_t cols);
  // Causal attention's products over a [T, T] block's causal half (seq_impl.h).
  void (*causalDots)(const float* a, const float* bt, float* s, int64_t T, int64_t dh);
  void (*causalRows)(const float* m, const float* x, float* out, int64_t T, int64_t dh);
  void (*causalCols)(const float* m, const float* x, float* out, int64_t T, int64_t dh);
};

#if defined(__x86_64__) || defined(__i386__)
#define LTH_SEQ_X86 1
// AVX-512F includes FMA, which GCC would contract a product and a sum into by default: the
// copy for it is compiled without contraction, so that it rounds each product as the others do.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
namespace avx512 {
#define LTH_SEQ_TARGET __attribute__((target("avx512f")))
#define LTH_SEQ_LANES 16
#include "seq_impl.h"
#undef LTH_SEQ_LANES
#undef LTH_SEQ_TARGET
}  // namespace avx512
#pragma GCC pop_options
namespace avx2 {
#define LTH_SEQ_TARGET __attribute__((target("avx2")))
#define LTH_SEQ_LANES 8
#include "seq_impl.h"
#undef LTH_SEQ_LANES
#undef LTH_SEQ_TARGET
}  // namespace avx2
#endif
namespace baseline {
#define LTH_SEQ_TARGET
#define LTH_SEQ_LANES 8
#include "seq_impl.h"
#undef LTH_SEQ_LANES
#undef LTH_SEQ_TARGET
}  // namespace baseline

// The copy for the path in use (the GEMM's, switched by setSimd): the same results from each.
const SeqKernels& kernels() {
#ifdef LTH_SEQ_X86
  if (lth::avx512_in_use()) return avx512::kTable;
  if (lth::avx2_in_use()) return avx2::kTable;
#endif
  return baseline::kTable;
}

// Whether the arrays of an LSTM layer's recurrence overlap where one is written while
// others are read (each pair: an output against everything else it meets).
bool lstm_arrays_overlap(lth::ArgReader& a, const float* const* arr, const size_t* floats, const char* const* names, int count,
                         int outputs) {
  for (int i = 0; i < outputs; i++)
    for (int j = 0; j < count; j++)
      if (j != i && lth::overlaps(arr[i], floats[i] * 4, arr[j], floats[j] * 4)) {
        a.fail(true, "%s must not share memory with %s", names[i], names[j]);
        return true;
      }
  return false;
}

// An LSTM layer's recurrence (forward or backward) split by batch rows: the rows of a
// batch never meet, so each part runs its rows through every step with no barrier between
// steps (splitting each step's product by columns would need one, and the cell between
// products another). Parts are whole row panels of the GEMM; every element of a product
// goes through the same micro-kernel chain whatever rows share its panel, so the results
// do not depend on the parts.
struct LstmJob {
  float* gates;            // [T, n, 4H]: pre-activations in, activations out (backward: read)
  float* c;                // [T, n, H]
  float* h;                // [T, n, H] (forward)
  float* gradH;            // [T, n, H] (backward; gains the recurrent gradients)
  float* gradGates;        // [T, n, 4H] (backward)
  float* gradC;            // [n, H]: c's gradient from the later steps (backward)
  const float* w;          // W_hhᵀ (forward) or W_hh (backward) in the GEMM's column panels
  int64_t panelStride;
  const float* zero;       // [n, H] zeros: the state before the first step
  int64_t n, T, H;
  int parts;
};

// Rows [*b0, *b1) of part `part`: whole row panels, shared out evenly.
void lstm_rows(const LstmJob& j, int part, int64_t* b0, int64_t* b1) {
  const int64_t mr = lth::gK->mr, panels = (j.n + mr - 1) / mr;
  *b0 = panels * part / j.parts * mr;
  const int64_t end = panels * (part + 1) / j.parts * mr;
  *b1 = end < j.n ? end : j.n;
}

void lstm_forward_part(void* ctx, int part, float* scratch) {
  const LstmJob& j = *static_cast<const LstmJob*>(ctx);
  int64_t b0, b1;
  lstm_rows(j, part, &b0, &b1);
  if (b0 >= b1) return;
  const int64_t n = j.n, H = j.H, G = 4 * H;
  const auto cell = kernels().cell;
  for (int64_t t = 0; t < j.T; t++) {
    float* g = j.gates + t * n * G;
    if (t > 0) {
      lth::GemmArgs prod{j.h + (t - 1) * n * H, j.w, g, n, H, G, false, false, true};
      prod.bPanel = j.panelStride;
      lth::gK->gemm(prod, b0, b1, 0, G, scratch);
    }
    cell(g, t > 0 ? j.c + (t - 1) * n * H : j.zero, j.c + t * n * H, j.h + t * n * H, b0, b1, H);
  }
}

void lstm_backward_part(void* ctx, int part, float* scratch) {
  const LstmJob& j = *static_cast<const LstmJob*>(ctx);
  int64_t b0, b1;
  lstm_rows(j, part, &b0, &b1);
  if (b0 >= b1) return;
  const int64_t n = j.n, H = j.H, G = 4 * H;
  const auto cellBackward = kernels().cellBackward;
  for (int64_t t = j.T - 1; t >= 0; t--) {
    float* dg = j.gradGates + t * n * G;
    cellBackward(j.gates + t * n * G, t > 0 ? j.c + (t - 1) * n * H : j.zero, j.c + t * n * H, j.gradH + t * n * H,
                 j.gradC, dg, j.gradC, b0, b1, H);
    if (t > 0) {
      lth::GemmArgs prod{dg, j.w, j.gradH + (t - 1) * n * H, n, G, H, false, false, true};
      prod.bPanel = j.panelStride;
      lth::gK->gemm(prod, b0, b1, 0, H, scratch);
    }
  }
}

void run_lstm(LstmJob& job, void (*part)(void*, int, float*)) {
  const int threads = lth::thread_count();
  const int64_t panels = (job.n + lth::gK->mr - 1) / lth::gK->mr;
  job.parts = (int)(threads < panels ? threads : panels);
  float* scratch = lth::caller_scratch();
  if (job.parts > 1 && lth::run_parts_scratch(threads, job.parts, part, &job, scratch)) return;
  job.parts = 1;
  part(&job, 0, scratch);
}

// lstmSequence(gates, weightHh, c, h, n, steps, hidden)
constexpr ArgSpec kLstmSequenceArgs[] = {arg::f32("gates"), arg::f32("weightHh"), arg::f32("c"),     arg::f32("h"),
                                         arg::dim("n"),     arg::dim("steps"),    arg::dim("hidden")};

// Each step's h_{t-1}·W_hhᵀ on the GEMM, then the cell: the same products and cell, bit for
// bit, as a matmul and a cell call per step, with W_hhᵀ packed once and the pool entered
// once for all the steps. Per step, packing W_hh and entering the pool three times cost as
// much as the products themselves at char_lstm's size (n = 32, H = 256).
napi_value LstmSequence(napi_env env, napi_callback_info info) {
  Args<7> a(env, info, "lstmSequence", kLstmSequenceArgs);
  if (!a.ok()) return nullptr;
  const int64_t n = a[4].dim(), T = a[5].dim(), H = a[6].dim(), G = 4 * H;
  a.need("gates", a[0].len, (u128)T * n * G, "steps*n*4*hidden");
  a.need("weightHh", a[1].len, G, H, "4*hidden*hidden");
  a.need("c", a[2].len, (u128)T * n * H, "steps*n*hidden");
  a.need("h", a[3].len, (u128)T * n * H, "steps*n*hidden");
  if (!a.ok()) return nullptr;
  LstmJob job{};
  job.gates = a[0].f32();
  const float* whh = a[1].f32();
  job.c = a[2].f32();
  job.h = a[3].f32();
  const float* arr[] = {job.gates, job.c, job.h, whh};
  const size_t floats[] = {(size_t)(T * n * G), (size_t)(T * n * H), (size_t)(T * n * H), (size_t)(G * H)};
  const char* names[] = {"gates", "c", "h", "weightHh"};
  if (lstm_arrays_overlap(a, arr, floats, names, 4, 3)) return nullptr;
  if (n == 0 || T == 0 || H == 0) return undefined_value(env);
  FtzScope ftz;
  thread_local std::vector<float> packed, zero;
  if (T > 1) job.w = lth::pack_b(whh, H, G, true, packed);
  job.panelStride = H * lth::gK->nr;
  zero.assign((size_t)(n * H), 0.0f);
  job.zero = zero.data();
  job.n = n;
  job.T = T;
  job.H = H;
  run_lstm(job, lstm_forward_part);
  return undefined_value(env);
}

// lstmSequenceBackward(gates, c, weightHh, gradH, gradGates, n, steps, hidden)
constexpr ArgSpec kLstmSequenceBackwardArgs[] = {arg::f32("gates"),     arg::f32("c"), arg::f32("weightHh"),
                                                 arg::f32("gradH"),     arg::f32("gradGates"), arg::dim("n"),
                                                 arg::dim("steps"),     arg::dim("hidden")};

// Back through the steps: the cell's gradient, then gradGates_t·W_hh into step t-1's gradH,
// W_hh packed once; split by batch rows as the forward pass.
napi_value LstmSequenceBackward(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "lstmSequenceBackward", kLstmSequenceBackwardArgs);
  if (!a.ok()) return nullptr;
  const int64_t n = a[5].dim(), T = a[6].dim(), H = a[7].dim(), G = 4 * H;
  a.need("gates", a[0].len, (u128)T * n * G, "steps*n*4*hidden");
  a.need("c", a[1].len, (u128)T * n * H, "steps*n*hidden");
  a.need("weightHh", a[2].len, G, H, "4*hidden*hidden");
  a.need("gradH", a[3].len, (u128)T * n * H, "steps*n*hidden");
  a.need("gradGates", a[4].len, (u128)T * n * G, "steps*n*4*hidden");
  if (!a.ok()) return nullptr;
  LstmJob job{};
  job.gates = a[0].f32();
  job.c = a[1].f32();
  const float* whh = a[2].f32();
  job.gradH = a[3].f32();
  job.gradGates = a[4].f32();
  const float* arr[] = {job.gradH, job.gradGates, job.gates, job.c, whh};
  const size_t floats[] = {(size_t)(T * n * H), (size_t)(T * n * G), (size_t)(T * n * G), (size_t)(T * n * H),
                           (size_t)(G * H)};
  const char* names[] = {"gradH", "gradGates", "gates", "c", "weightHh"};
  if (lstm_arrays_overlap(a, arr, floats, names, 5, 2)) return nullptr;
  if (n == 0 || T == 0 || H == 0) return undefined_value(env);
  FtzScope ftz;
  thread_local std::vector<float> packed, zero, gradC;
  if (T > 1) job.w = lth::pack_b(whh, G, H, false, packed);
  job.panelStride = G * lth::gK->nr;
  zero.assign((size_t)(n * H), 0.0f);
  gradC.assign((size_t)(n * H), 0.0f);
  job.zero = zero.data();
  job.gradC = gradC.data();
  job.n = n;
  job.T = T;
  job.H = H;
  run_lstm(job, lstm_backward_part);
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
  const auto row = kernels().row;
  for (int64_t r = 0; r < rows; r++) row(x + r * cols, out + r * cols, cols, causal ? r % cols + 1 : cols);
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
  const auto rowBackward = kernels().rowBackward;
  for (int64_t r = 0; r < rows; r++) rowBackward(y + r * cols, go + r * cols, gi + r * cols, cols);
  return undefined_value(env);
}

// Σ_j f(j) over j < n as four interleaved double sums (j mod 4) added as (s0 + s1) + (s2 +
// s3): a layer norm's row of a few dozen values is otherwise one chain of dependent
// additions, bound by their latency.
template <class F>
inline double sum4(int64_t n, F f) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) s0 += f(j), s1 += f(j + 1), s2 += f(j + 2), s3 += f(j + 3);
  for (; j < n; j++) s0 += f(j);
  return (s0 + s1) + (s2 + s3);
}

// sum4 of f and of g in one pass.
template <class F, class G>
inline void sums4(int64_t n, F f, G g, double* sf, double* sg) {
  double f0 = 0, f1 = 0, f2 = 0, f3 = 0, g0 = 0, g1 = 0, g2 = 0, g3 = 0;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    f0 += f(j), f1 += f(j + 1), f2 += f(j + 2), f3 += f(j + 3);
    g0 += g(j), g1 += g(j + 1), g2 += g(j + 2), g3 += g(j + 3);
  }
  for (; j < n; j++) f0 += f(j), g0 += g(j);
  *sf = (f0 + f1) + (f2 + f3);
  *sg = (g0 + g1) + (g2 + g3);
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
  lth::parallel_units(rows, rows * cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      const double mu = sum4(cols, [&](int64_t j) { return (double)xr[j]; }) / cols;
      const double v = sum4(cols, [&](int64_t j) { return (xr[j] - mu) * (xr[j] - mu); });
      const float rs = (float)(1 / std::sqrt(v / cols + eps)), m = (float)mu;
      mean[r] = m;
      rstd[r] = rs;
      float* yr = out + r * cols;
      for (int64_t j = 0; j < cols; j++) yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j];
    }
  });
  return undefined_value(env);
}

// Groups of rows layerNormBackward sums gamma's and beta's gradients in: enough for the pool.
constexpr int64_t kNormGroups = 8;

// layerNormBackward(x, gamma, mean, rstd, gradOut, gradX, gradGamma | null, gradBeta | null, rows, cols, accumulateX)
constexpr ArgSpec kLayerNormBackwardArgs[] = {arg::f32("x"),       arg::f32("gamma"), arg::f32("mean"),
                                              arg::f32("rstd"),    arg::f32("gradOut"), arg::f32("gradX"),
                                              arg::f32_or_null("gradGamma"), arg::f32_or_null("gradBeta"),
                                              arg::dim("rows"),    arg::dim("cols"),    arg::flag("accumulateX")};

napi_value LayerNormBackward(napi_env env, napi_callback_info info) {
  Args<11> a(env, info, "layerNormBackward", kLayerNormBackwardArgs);
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
  const bool accX = a[10].flag;
  // The rows in up to kNormGroups groups fixed by their count: each group's gamma and beta
  // gradients summed in row order into its own partial, the partials then added to
  // gradGamma and gradBeta in group order, so results do not depend on the thread count.
  const int64_t groups = rows < kNormGroups ? rows : kNormGroups;
  thread_local std::vector<float> pbuf;  // the caller's: the pool's threads write through `partials`
  const bool sums = gg || gb;
  if (sums && pbuf.size() < (size_t)(2 * groups * cols)) pbuf.resize((size_t)(2 * groups * cols));
  float* partials = pbuf.data();  // group g: gamma's [cols], then beta's [cols]
  lth::parallel_units(groups, rows * cols, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; g++) {
      float* pg = partials + 2 * g * cols;
      float* pb = pg + cols;
      if (sums) std::memset(pg, 0, (size_t)(2 * cols) * sizeof(float));
      for (int64_t r = rows * g / groups; r < rows * (g + 1) / groups; r++) {
        const int64_t o = r * cols;
        const float mu = mean[r], rs = rstd[r];
        double sd, sdx;
        sums4(
            cols, [&](int64_t j) { return (double)(go[o + j] * gamma[j]); },
            [&](int64_t j) { return (double)(go[o + j] * gamma[j]) * ((x[o + j] - mu) * rs); }, &sd, &sdx);
        const float msd = (float)(sd / cols), msdx = (float)(sdx / cols);
        for (int64_t j = 0; j < cols; j++) {
          const float xh = (x[o + j] - mu) * rs;
          const float v = rs * (go[o + j] * gamma[j] - msd - xh * msdx);
          gx[o + j] = accX ? gx[o + j] + v : v;
          if (sums) {
            pg[j] += go[o + j] * xh;
            pb[j] += go[o + j];
          }
        }
      }
    }
  });
  for (int64_t g = 0; g < (sums ? groups : 0); g++)
    for (int64_t j = 0; j < cols; j++) {
      if (gg) gg[j] += partials[2 * g * cols + j];
      if (gb) gb[j] += partials[(2 * g + 1) * cols + j];
    }
  return undefined_value(env);
}

// Causal multi-head attention over qkv [n, T, 3·dim]: block i = (sample b, head h) of the
// n·heads blocks has its [T, dh] queries (times scale), keys and values in q, k, v at
// i·T·dh and its attention [T, T] in p at i·T·T. A block runs on one thread, over the
// causal half of its [T, T] products only (SeqKernels' causal kernels: a position's
// scores against later keys are never computed); blocks touch disjoint parts of every
// array, so they share out over the pool, and every value comes out of the same
// instructions however they do.
struct Attention {
  const float* qkv;       // forward input [n, T, 3·dim]
  float* out;             // forward output [n, T, dim]
  const float* gradOut;   // backward: the output's gradient [n, T, dim]
  float* gradQkv;         // backward: (+)= the input's gradient [n, T, 3·dim]
  bool accumulate;        // backward: add to gradQkv (else overwrite it)
  float *q, *k, *v, *p;
  int64_t T, heads, dim, dh;
  double scale;           // 1/√dh, in double (as the reference computes it)
};

float* block_buffer(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// A block's [T, dh] queries times scale (in double), keys and values, from the rows of src
// (its first position's queries; `stride` floats a position, keys and values d and 2·d on).
void gather_block(const float* __restrict src, int64_t stride, int64_t d, double scale, float* __restrict q,
                  float* __restrict k, float* __restrict v, int64_t T, int64_t dh) {
  for (int64_t t = 0; t < T; t++) {
    const float* __restrict row = src + t * stride;
    for (int64_t j = 0; j < dh; j++) q[t * dh + j] = (float)((double)row[j] * scale);
    for (int64_t j = 0; j < dh; j++) k[t * dh + j] = row[d + j];
    for (int64_t j = 0; j < dh; j++) v[t * dh + j] = row[2 * d + j];
  }
}

// gather_block's converse for the gradients: dst's rows += dq·scale (in double: Q entered
// scaled), dk and dv.
void scatter_block(const float* __restrict dq, const float* __restrict dk, const float* __restrict dv, double scale,
                   float* __restrict dst, int64_t stride, int64_t d, int64_t T, int64_t dh, bool accumulate) {
  for (int64_t t = 0; t < T; t++) {
    float* __restrict row = dst + t * stride;
    if (accumulate) {
      for (int64_t j = 0; j < dh; j++) row[j] += (float)((double)dq[t * dh + j] * scale);
      for (int64_t j = 0; j < dh; j++) row[d + j] += dk[t * dh + j];
      for (int64_t j = 0; j < dh; j++) row[2 * d + j] += dv[t * dh + j];
    } else {
      for (int64_t j = 0; j < dh; j++) row[j] = (float)((double)dq[t * dh + j] * scale);
      for (int64_t j = 0; j < dh; j++) row[d + j] = dk[t * dh + j];
      for (int64_t j = 0; j < dh; j++) row[2 * d + j] = dv[t * dh + j];
    }
  }
}

// xt [dh, T] = the transpose of x [T, dh], for causalDots' columns.
void transpose_block(const float* x, float* xt, int64_t T, int64_t dh) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t j = 0; j < dh; j++) xt[j * T + t] = x[t * dh + j];
}

void attention_block(const Attention& at, int64_t i) {
  const int64_t T = at.T, dh = at.dh, D = at.dim, D3 = 3 * D, b = i / at.heads, h = i % at.heads, per = T * dh;
  float *q = at.q + i * per, *k = at.k + i * per, *v = at.v + i * per, *p = at.p + i * T * T;
  thread_local std::vector<float> buf;
  float* kt = block_buffer(buf, (size_t)(2 * per));
  float* o = kt + per;
  gather_block(at.qkv + b * T * D3 + h * dh, D3, D, at.scale, q, k, v, T, dh);
  transpose_block(k, kt, T, dh);
  const SeqKernels& kern = kernels();
  kern.causalDots(q, kt, p, T, dh);  // scores Q·Kᵀ
  for (int64_t t = 0; t < T; t++) kern.row(p + t * T, p + t * T, T, t + 1);
  kern.causalRows(p, v, o, T, dh);  // P·V
  for (int64_t t = 0; t < T; t++) std::memcpy(at.out + (b * T + t) * D + h * dh, o + t * dh, (size_t)dh * sizeof(float));
}

void attention_block_backward(const Attention& at, int64_t i) {
  const int64_t T = at.T, dh = at.dh, D = at.dim, D3 = 3 * D, b = i / at.heads, h = i % at.heads, per = T * dh;
  const float *q = at.q + i * per, *k = at.k + i * per, *v = at.v + i * per, *p = at.p + i * T * T;
  thread_local std::vector<float> buf;
  float* go = block_buffer(buf, (size_t)(5 * per + T * T));
  float *dq = go + per, *dk = dq + per, *dv = dk + per, *vt = dv + per, *ds = vt + per;
  for (int64_t t = 0; t < T; t++) std::memcpy(go + t * dh, at.gradOut + (b * T + t) * D + h * dh, (size_t)dh * sizeof(float));
  transpose_block(v, vt, T, dh);
  const SeqKernels& kern = kernels();
  kern.causalDots(go, vt, ds, T, dh);  // dP = dO·Vᵀ
  kern.causalCols(p, go, dv, T, dh);   // dV = Pᵀ·dO
  for (int64_t t = 0; t < T; t++) kern.rowBackward(p + t * T, ds + t * T, ds + t * T, t + 1);  // dS
  kern.causalRows(ds, k, dq, T, dh);  // dS·K
  kern.causalCols(ds, q, dk, T, dh);  // dK = dSᵀ·(Q·scale)
  scatter_block(dq, dk, dv, at.scale, at.gradQkv + b * T * D3 + h * dh, D3, D, T, dh, at.accumulate);
}

// Blocks [0, blocks) of fn over the pool, in at most 4096 parts of consecutive blocks.
struct BlockRun {
  const Attention* at;
  void (*fn)(const Attention&, int64_t);
  int64_t blocks, parts;
};

void block_range(void* ctx, int part) {
  const BlockRun& r = *static_cast<const BlockRun*>(ctx);
  for (int64_t i = r.blocks * part / r.parts; i < r.blocks * (part + 1) / r.parts; i++) r.fn(*r.at, i);
}

void run_blocks(const Attention& at, int64_t blocks, void (*fn)(const Attention&, int64_t)) {
  BlockRun r{&at, fn, blocks, blocks < 4096 ? blocks : 4096};
  if (r.parts > 0) lth::run_parts((int)r.parts, block_range, &r);
}

// The shape arguments of both exports (n, T, heads, dim from argument 6 on), checked, and
// the lengths of q, k, v and p (from argument `q` on); per = n·T·dim, the length of the
// [n, T, dim] arrays (the [n, T, 3·dim] ones have three times it). False on an error.
template <size_t N>
bool read_attention(Args<N>& a, int64_t q, Attention* at, int64_t* n, unsigned __int128* per) {
  *n = a[6].dim();
  at->T = a[7].dim();
  at->heads = a[8].dim();
  at->dim = a[9].dim();
  if (at->heads < 1 || at->dim % at->heads != 0) {
    a.fail(true, "dim (%lld) must be a positive multiple of heads (%lld)", (long long)at->dim, (long long)at->heads);
    return false;
  }
  at->dh = at->dim / at->heads;
  at->scale = 1.0 / std::sqrt((double)at->dh);
  *per = (unsigned __int128)(uint64_t)*n * (uint64_t)at->T * (uint64_t)at->dim;
  a.need("q", a[q].len, *per, "n*T*dim");
  a.need("k", a[q + 1].len, *per, "n*T*dim");
  a.need("v", a[q + 2].len, *per, "n*T*dim");
  a.need("p", a[q + 3].len, (unsigned __int128)(uint64_t)*n * (uint64_t)at->heads * (uint64_t)at->T * (uint64_t)at->T,
         "n*heads*T*T");
  return true;
}

// causalAttention(qkv, out, q, k, v, p, n, T, heads, dim)
constexpr ArgSpec kCausalAttentionArgs[] = {arg::f32("qkv"), arg::f32("out"), arg::f32("q"),     arg::f32("k"),
                                            arg::f32("v"),   arg::f32("p"),   arg::dim("n"),     arg::dim("T"),
                                            arg::dim("heads"), arg::dim("dim")};

napi_value CausalAttention(napi_env env, napi_callback_info info) {
  Args<10> a(env, info, "causalAttention", kCausalAttentionArgs);
  if (!a.ok()) return nullptr;
  Attention at{};
  int64_t n;
  unsigned __int128 per;
  if (!read_attention(a, 2, &at, &n, &per)) return nullptr;
  a.need("qkv", a[0].len, 3 * per, "n*T*3*dim");
  a.need("out", a[1].len, per, "n*T*dim");
  if (!a.ok()) return nullptr;
  if (n == 0 || at.T == 0 || at.dim == 0) return undefined_value(env);
  FtzScope ftz;
  at.qkv = a[0].f32();
  at.out = a[1].f32();
  at.q = a[2].f32();
  at.k = a[3].f32();
  at.v = a[4].f32();
  at.p = a[5].f32();
  run_blocks(at, n * at.heads, attention_block);
  return undefined_value(env);
}

// causalAttentionBackward(gradOut, q, k, v, p, gradQkv, n, T, heads, dim, accumulate)
constexpr ArgSpec kCausalAttentionBackwardArgs[] = {arg::f32("gradOut"), arg::f32("q"),   arg::f32("k"),
                                                    arg::f32("v"),       arg::f32("p"),   arg::f32("gradQkv"),
                                                    arg::dim("n"),       arg::dim("T"),   arg::dim("heads"),
                                                    arg::dim("dim"),     arg::flag("accumulate")};

napi_value CausalAttentionBackward(napi_env env, napi_callback_info info) {
  Args<11> a(env, info, "causalAttentionBackward", kCausalAttentionBackwardArgs);
  if (!a.ok()) return nullptr;
  Attention at{};
  int64_t n;
  unsigned __int128 per;
  if (!read_attention(a, 1, &at, &n, &per)) return nullptr;
  a.need("gradOut", a[0].len, per, "n*T*dim");
  a.need("gradQkv", a[5].len, 3 * per, "n*T*3*dim");
  if (!a.ok()) return nullptr;
  if (n == 0 || at.T == 0 || at.dim == 0) return undefined_value(env);
  FtzScope ftz;
  at.gradOut = a[0].f32();
  at.q = a[1].f32();
  at.k = a[2].f32();
  at.v = a[3].f32();
  at.p = a[4].f32();
  at.gradQkv = a[5].f32();
  at.accumulate = a[10].flag;
  run_blocks(at, n * at.heads, attention_block_backward);
  return undefined_value(env);
}

}  // namespace

bool lth::register_seq(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"lstmSequence", LstmSequence}, {"lstmSequenceBackward", LstmSequenceBackward}, {"softmaxRows", SoftmaxRows},
      {"softmaxRowsBackward", SoftmaxRowsBackward}, {"layerNorm", LayerNorm}, {"layerNormBackward", LayerNormBackward},
      {"causalAttention", CausalAttention}, {"causalAttentionBackward", CausalAttentionBackward},
  };
  return define_exports(env, exports, kExports);
}
