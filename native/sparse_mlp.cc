// The fused sparse MLP (see native/README.md, "Fused MLP step"): a chain of sparse layers
// prepared once (sparseMlpPrepare), then a whole training step per batch in one call
// (sparseMlpStep), the optimiser's update included, and the evaluation of a whole data set
// in one call (sparseMlpEval).
//
// The step. The first layer, the widest, is split by its column blocks into `parts`
// ranges of about equal nonzeros (chosen when the chain is prepared), each run as one
// task on the pool: the task gathers its range of the input features straight from the
// data set into panels and computes that range's partial sums of the layer's outputs;
// after the backward pass it computes the weight gradient of its own nonzeros (contiguous
// in packed order) and their update. So each core reads only the inputs it gathered
// itself. The caller adds the partial sums in part order and runs the other layers, the
// loss and their backward pass (the other parts compute most of those layers' weight
// gradients meanwhile, see below), then updates them in phase 3. Part 0 is always the
// caller's (run_parts' callerFirst), so every buffer stays on one core from step to step:
// letting the pool's cores take the small layers' updates makes the caller's next step
// pay for fetching their weights back. The ranges depend on the pattern and `parts` only, so results are bitwise the
// same for the same parts on any number of threads (with fewer threads than parts, a
// thread runs several parts).
//
// While the caller runs the other layers (phase 2), the other parts' threads gather the
// next batch's inputs, all features, into the second of the calling thread's two panel
// buffers (tPanels); the next step uses them when it asks for the same rows of the
// same data set. On the 3.6% LeNet
// step (interleaved, 2 threads) this makes the step's median 162 us against 196 us: the
// caller's range then comes from the other core's cache in phase 1, which costs less
// than gathering it from memory. When the other layers are big enough (kSplitWork), they
// then compute their shares of those layers' weight gradients, by rows, each layer's as
// soon as the caller has its output gradient (the caller takes a smaller share after the
// layer's input gradient): on the 10% ERK LeNet step this shortens phase 2 from about 41
// to 31 us and the step from about 77 to 68 us (2 threads, fastest tenth of the steps).
// With one part there is no other thread and each step gathers its own batch and
// computes every gradient in order.

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "bindings.h"
#include "elementwise.h"
#include "ftz.h"
#include "gemm.h"
#include "mlp_step_args.h"
#include "napi_args.h"
#include "pool.h"
#include "sparse_kernels.h"

namespace {

using lth::ArgReader;
using lth::ArgSpec;
using lth::Args;
using lth::ArgValue;
using lth::block_start;
using lth::FtzScope;
using lth::gS;
using lth::panel_cols;
using lth::Pattern;
using lth::round16;
using lth::HoldsArgs;
using lth::wrap_holding_args;
namespace arg = lth::arg;

// The export that makes prepared chains.
constexpr char kSparseMlpPrepare[] = "sparseMlpPrepare";

// Phase 2 shares the later layers' weight gradients (see mlp_step) when their nonzeros
// times the padded batch reach this: below it, reading the caller's activations and
// gradients from the other core costs more than the work shared. On LeNet at batch 60
// (2 threads, the two ways alternated in one process): 10% ERK (7,700 later nonzeros)
// steps in 0.88 of the time, 3.6% ERK and uniform 10% (3,100) in 1.06-1.12 of it.
constexpr int64_t kSplitWork = 5000 * 64;

// The most parts the first layer is split into.
constexpr int kMaxParts = 64;

struct MlpLayer {
  const Pattern* p;
  float *vals, *bias, *gvals, *gbias;
  bool relu;
  float *w0, *w1, *b0, *b1;  // the optimiser's state of the weight and the bias (with a rule)
};

struct MlpStep {
  std::vector<MlpLayer> layers;
  const float* src;
  const int32_t* rows;  // the samples' rows of src
  int64_t n, ld;
  int parts;               // the first layer's parts
  const int64_t* bounds;   // part q has the column blocks [bounds[q], bounds[q + 1]) of layer 0
  const lth::UpdateRule* rule;  // the optimiser update to apply after the gradients, or null
  bool update;                  // rule given and the loss finite
  std::vector<float*> act;      // act[0] = input panels, act[l + 1] = layer l's outputs
  std::vector<float*> grad;     // grad[l] = gradient of layer l's outputs
  std::vector<float*> partial;  // partial[q], q >= 1: part q's partial sums of layer 0
  bool gathered;                // act[0] already holds the batch (gathered ahead by the step before)
  const int32_t* nextRows;      // the next batch's rows to gather ahead into nextIn, or null
  float* nextIn;
  double loss;                  // the summed loss, from the caller's part of phase 2
  // The next step's input panels when phase 3 also runs its phase 1 (see mlp_step), else
  // null; `forwarded`: this step's phase 1 ran so, in the step before.
  float* forwardNext = nullptr;
  bool forwarded = false;
  // With `split`, the other parts compute shares of layers 1 .. L-1's weight gradients in
  // phase 2, each layer's once `ready` (set by the caller) reaches L - l.
  bool split = false;
  std::atomic<int> ready{0};
};

// Phase 1, part q: gather the part's input features, its partial sums of layer 0 (part 0
// into the layer's outputs, with the bias). A single part computes the whole layer, its
// activation and zero padding included.
void first_forward(const MlpStep& s, int q, float* in, bool gathered) {
  const MlpLayer& y = s.layers[0];
  const Pattern& p = *y.p;
  const int64_t b0 = s.bounds[q], b1 = s.bounds[q + 1];
  const int64_t f0 = std::min(b0 * p.bc, p.cols), f1 = std::min(b1 * p.bc, p.cols);
  if (!gathered) gS->gatherPanels(s.src, p.cols, s.rows, s.n, f0, f1, in, s.ld);
  if (s.parts == 1) gS->forward(p, y.vals, in, s.act[1], y.bias, 0, p.rows, s.n, s.ld, y.relu);
  else gS->forwardBlocks(p, y.vals, in, q ? s.partial[q] : s.act[1], q ? nullptr : y.bias, b0, b1, s.ld);
}
void mlp_first_layer(void* ctx, int q) {
  const MlpStep& s = *static_cast<const MlpStep*>(ctx);
  first_forward(s, q, s.act[0], s.gathered);
}

// Phase 3, part q: the weight gradient of layer 0 at the part's nonzeros (and the bias's,
// on part 0), then their update; with forwardNext, then the part's phase 1 of the next
// step on its panels (gathered ahead), with the weights it has just updated.
void later_update(const MlpStep& s, size_t l);
void mlp_first_layer_grad(void* ctx, int q) {
  const MlpStep& s = *static_cast<const MlpStep*>(ctx);
  const MlpLayer& y = s.layers[0];
  const Pattern& p = *y.p;
  const int64_t b0 = s.bounds[q], b1 = s.bounds[q + 1];
  gS->weightGradBlocks(p, s.grad[0], s.act[0], y.gvals, q ? nullptr : y.gbias, b0, b1, s.ld);
  if (!s.update) return;
  // The other layers' updates, when phase 2 shared their gradients, all on part 0: their
  // weights and moments stay in the cache of the caller, whose phase 2 reads them.
  if (q == 0 && s.split)
    for (size_t l = 1; l < s.layers.size(); l++) later_update(s, l);
  // The part's nonzeros are packed positions [start of block b0, start of block b1).
  const int64_t k0 = block_start(p, b0), k = block_start(p, b1) - k0;
  lth::update_params(*s.rule, y.vals + k0, y.gvals + k0, y.w0 + k0, y.w1 ? y.w1 + k0 : nullptr, nullptr, k);
  if (q == 0 && y.bias) lth::update_params(*s.rule, y.bias, y.gbias, y.b0, y.b1, nullptr, p.rows);
  if (s.forwardNext) first_forward(s, q, s.forwardNext, true);
}

// A pause in a spin-wait loop.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Part q's share of layer l's weight and bias gradients in phase 2: a range of its rows,
// fixed by `parts` (each row's gradient is the same instructions whoever computes it, so
// the shares change no result). The caller's share, part 0's, is half the others': it
// runs the layers' forward and backward passes too (at 2 parts on a 10% LeNet this
// balances the phase).
void later_weight_grad(const MlpStep& s, size_t l, int q) {
  const MlpLayer& y = s.layers[l];
  const int64_t T = 2 * s.parts - 1, rows = y.p->rows;
  const int64_t r0 = q ? rows * (2 * q - 1) / T : 0, r1 = rows * (2 * q + 1) / T;
  gS->weightGrad(*y.p, s.grad[l], s.act[l], y.gvals, y.gbias, r0, r1, s.ld);
}

// Layer l's update (l >= 1), after its weight gradient, when the step updates.
void later_update(const MlpStep& s, size_t l) {
  const MlpLayer& y = s.layers[l];
  lth::update_params(*s.rule, y.vals, y.gvals, y.w0, y.w1, nullptr, y.p->nnz);
  if (y.bias) lth::update_params(*s.rule, y.bias, y.gbias, y.b0, y.b1, nullptr, y.p->rows);
}

// Phase 2, the caller: the sum of layer 0's parts (in part order, the activation after the
// last), the other layers forward, the loss and their backward pass down to the gradient
// of layer 0's outputs. Without `split` it also computes their weight gradients and
// updates; with it, it publishes each layer's output gradient (`ready`) for the other
// parts' shares of its weight gradient (mlp_later_weight_grads), computes its own share
// after the layer's input gradient, and phase 3 applies the updates.
void mlp_middle(MlpStep& s, const int32_t* labels) {
  const size_t L = s.layers.size();
  const MlpLayer& first = s.layers[0];
  for (int q = 1; q < s.parts; q++)
    gS->addAct(s.act[1], s.partial[q], s.act[1], first.p->rows, s.n, s.ld, first.relu && q == s.parts - 1);
  for (size_t l = 1; l < L; l++) {
    const MlpLayer& y = s.layers[l];
    lth::sparse_forward(*y.p, y.vals, s.act[l], s.act[l + 1], y.bias, s.n, s.ld, y.relu);
  }
  s.loss = gS->softmaxXent(s.act[L], s.grad[L - 1], labels, s.layers[L - 1].p->rows, s.n, s.ld,
                           (float)(1.0 / (double)s.n));
  s.update = s.rule && std::isfinite(s.loss);
  for (size_t l = L; l-- > 0;) {
    const MlpLayer& y = s.layers[l];
    if (y.relu) gS->reluMask(s.grad[l], s.act[l + 1], y.p->rows * panel_cols(s.ld));
    if (l == 0) break;
    if (s.split) s.ready.store((int)(L - l), std::memory_order_release);
    lth::sparse_input_grad(*y.p, y.vals, s.grad[l], s.grad[l - 1], s.ld);
    if (s.split) {
      later_weight_grad(s, l, 0);
      continue;
    }
    lth::sparse_weight_grad(*y.p, s.grad[l], s.act[l], y.gvals, y.gbias, s.ld);
    if (s.update) later_update(s, l);
  }
}

// Phase 2, part q >= 1 (after its share of the gathering): its shares of the weight
// gradients of layers L-1 .. 1, each once the caller has published the layer's output
// gradient.
void mlp_later_weight_grads(MlpStep& s, int q) {
  const size_t L = s.layers.size();
  for (size_t l = L; l-- > 1;) {
    // The caller is at most a few microseconds away; yield if it was preempted.
    for (unsigned spins = 0; s.ready.load(std::memory_order_acquire) < (int)(L - l); spins++) {
      cpu_relax();
      if (spins > 4096) std::this_thread::yield();
    }
    later_weight_grad(s, l, q);
  }
}

// One step. With `next` (the next step's input panels, gathered ahead), phase 3 runs the
// next step's phase 1 too when the step updates: each part goes on from its update of
// layer 0's nonzeros to the forward sums of the same column blocks, which saves a
// synchronisation of the parts a step and finds those weights in the part's cache; the
// next call then starts at phase 2 (s.forwarded). The same operations in the same order as
// a separate phase 1: the results are bitwise those of unfused steps. LeNet-300-100, 2
// threads, runs of 100 steps alternated in one process: 10% ERK 61.0 against 62.0 us a
// step, 3.6% 33.2 against 33.9 (fastest tenth of 200 runs each).
double mlp_step(MlpStep& s, const int32_t* labels, float* next) {
  if (!s.forwarded) lth::run_parts(s.parts, mlp_first_layer, &s, true);
  if (!s.split && !s.nextIn) {
    mlp_middle(s, labels);
  } else {
    // The caller runs phase 2's layers; the other parts gather the next batch meanwhile,
    // each an equal share of the features (or the caller does, after its part, if no
    // worker took them), then, with `split`, take their shares of those layers' weight
    // gradients as the caller's backward pass reaches them.
    struct Middle {
      MlpStep& s;
      const int32_t* labels;
    } m{s, labels};
    lth::run_parts(s.parts, [](void* c, int part) {
      Middle& m = *static_cast<Middle*>(c);
      if (part == 0) return mlp_middle(m.s, m.labels);
      if (m.s.nextIn) {
        const int64_t features = m.s.layers[0].p->cols;
        const int64_t shares = m.s.parts - 1, i = part - 1;
        gS->gatherPanels(m.s.src, features, m.s.nextRows, m.s.n, features * i / shares, features * (i + 1) / shares,
                         m.s.nextIn, m.s.ld);
      }
      if (m.s.split) mlp_later_weight_grads(m.s, part);
    }, &m, true);
  }
  s.forwardNext = s.update ? next : nullptr;
  lth::run_parts(s.parts, mlp_first_layer_grad, &s, true);
  s.forwarded = s.forwardNext != nullptr;
  return s.loss / (double)s.n;
}

thread_local std::vector<float> tMlpWorkspace;

// The first 64-byte aligned float of v (which has 16 floats to spare): every panel row
// (64 floats) starts on a cache line.
float* aligned64(std::vector<float>& v) {
  return v.data() + (16 - (reinterpret_cast<uintptr_t>(v.data()) / 4) % 16) % 16;
}
thread_local std::vector<int32_t> tMlpLabels;

// a.need(...) for "layer l <what>", the name formatted only when the check fails (this
// runs on every training step).
void need_layer(ArgReader& a, size_t l, const char* what, size_t len, int64_t count, const char* of) {
  if (!a.ok() || (int64_t)len >= count) return;
  char name[64];
  std::snprintf(name, sizeof name, "layer %zu %s", l, what);
  a.need(name, len, count, 1, of);
}

// A chain of layers checked once for sparseMlpStep and sparseMlpEval, with references
// that keep its arrays alive. A training loop passes the same arrays every step, and
// reading some forty typed arrays through Node-API takes ~10 us of a ~170 us step (3.6%
// LeNet); the step then reads only its own few arguments. The arrays must keep their
// memory (not be transferred).
struct PreparedMlp : HoldsArgs {
  explicit PreparedMlp(napi_env e) : HoldsArgs(kSparseMlpPrepare, e) {}
  std::vector<MlpLayer> layers;  // every state array given, whatever the rule will want
  std::vector<std::array<size_t, 4>> stateLen;  // lengths of w0, w1, b0, b1
  std::vector<std::array<bool, 4>> stateGiven;  // (an empty state array is given but null)
  int parts = 1;
  std::vector<int64_t> bounds;  // parts + 1 column block boundaries of layer 0 (see MlpStep)
};

// The input panels of two batches (see lth::BatchAhead), as panels of the inputs at the
// padded batch. They belong to the calling thread, not to a chain: the panels are the
// data's alone, so a chain prepared again after a mask update (every ΔT steps in dynamic
// sparse training) starts from the batch its predecessor gathered, in memory already
// faulted in (with buffers of its own, the first step after an update took 203 us instead
// of 63 on the 10% ERK LeNet).
thread_local lth::BatchAhead tPanels;

// The caller's workspace for a step of s.layers at s.ld with s.parts parts: each layer's
// outputs (s.act[1 ..]) and their gradients (s.grad), the partial sums of layer 0's parts
// 1 .. parts - 1; and the thread's two input panel buffers sized for s.ld (s.act[0] is
// left to the caller).
void place_buffers(MlpStep& s) {
  const size_t L = s.layers.size();
  const int64_t cols = panel_cols(s.ld), inputs = s.layers[0].p->cols;
  std::vector<int64_t> sizes;
  for (const MlpLayer& y : s.layers) sizes.push_back(y.p->rows * cols);
  for (const MlpLayer& y : s.layers) sizes.push_back(y.p->rows * cols);
  for (int q = 1; q < s.parts; q++) sizes.push_back(s.layers[0].p->rows * cols);
  size_t total = 16;
  for (int64_t z : sizes) total += (size_t)z;
  if (tMlpWorkspace.size() < total) tMlpWorkspace.resize(total);
  float* w = aligned64(tMlpWorkspace);
  s.act.assign(1, nullptr);
  s.grad.clear();
  s.partial.assign(1, nullptr);  // part 0 sums into act[1]
  for (size_t i = 0; i < sizes.size(); i++) {
    if (i < L) s.act.push_back(w);
    else if (i < 2 * L) s.grad.push_back(w);
    else s.partial.push_back(w);
    w += sizes[i];
  }
  for (std::vector<float>& buf : tPanels.in)
    if (buf.size() < (size_t)(inputs * cols) + 16) buf.resize((size_t)(inputs * cols) + 16);
}

// Whether every layer's pattern is still usable: one given to sparsePattern as `reuse`
// after the chain was prepared has lost its memory to the new pattern.
bool patterns_usable(ArgReader& a, const std::vector<MlpLayer>& layers) {
  for (size_t l = 0; l < layers.size() && a.ok(); l++)
    if (layers[l].p->maker != lth::kSparsePattern)
      a.fail(false, "layer %zu's pattern was given to sparsePattern as `reuse` after the chain was prepared", l);
  return a.ok();
}

// Column block boundaries of layer 0 for `parts` parts of about equal nonzeros: boundary q
// is the first block boundary where the nonzeros before it are closest to q/parts of them.
std::vector<int64_t> part_bounds(const Pattern& p, int parts) {
  std::vector<int64_t> bounds((size_t)parts + 1, 0);
  for (int q = 1; q < parts; q++) {
    const int64_t target = q * p.nnz;
    int64_t best = 0;
    for (int64_t b = 1; b <= p.nbc; b++)
      if (std::llabs(parts * block_start(p, b) - target) < std::llabs(parts * block_start(p, best) - target)) best = b;
    bounds[q] = std::max(best, bounds[q - 1]);
  }
  bounds[parts] = p.nbc;
  return bounds;
}

// sparseMlpPrepare(parts, ...layers) -> a handle for sparseMlpStep and sparseMlpEval.
// `parts` (1..64) is the number of parts the first layer is split into (see mlp_step; a
// step's results depend on it, not on the thread count). Each layer is ten arguments:
// pattern, vals, bias | null, relu, gvals, gbias | null, then the optimiser state w0, w1,
// b0, b1 (each a Float32Array or null). Checks their sizes, that the weights are not
// empty, that the layers chain, and that no two of a layer's arrays share memory.
constexpr ArgSpec kPartsArgs[] = {arg::number("parts")};
constexpr ArgSpec kLayerArgs[] = {lth::pattern_arg(), arg::f32("vals"), arg::f32_or_null("bias"), arg::flag("relu")};
constexpr ArgSpec kLayerGradArgs[] = {arg::f32("gvals"),     arg::f32_or_null("gbias"), arg::f32_or_null("w0"),
                                      arg::f32_or_null("w1"), arg::f32_or_null("b0"),    arg::f32_or_null("b1")};
constexpr size_t kPerLayer = 10;

napi_value SparseMlpPrepare(napi_env env, napi_callback_info info) {
  lth::VarArgs a(env, info, kSparseMlpPrepare, 1);
  ArgValue partsArg{};
  if (!a.read(kPartsArgs, 1, &partsArg)) return nullptr;
  const double parts = partsArg.num;
  if (!(parts >= 1 && parts <= kMaxParts && std::floor(parts) == parts)) {
    a.fail(true, "parts must be an integer from 1 to %d, got %.17g", kMaxParts, parts);
    return nullptr;
  }
  const size_t layerArgs = a.argc() - 1;
  if (layerArgs == 0 || layerArgs % kPerLayer != 0) {
    a.fail(false, "expected %zu arguments per layer after parts, got %zu", kPerLayer, layerArgs);
    return nullptr;
  }
  auto prep = std::make_unique<PreparedMlp>(env);
  prep->parts = (int)parts;
  const size_t L = layerArgs / kPerLayer;
  for (size_t l = 0; l < L; l++) {
    const size_t i = 1 + kPerLayer * l;
    ArgValue v[kPerLayer] = {};
    if (!a.read(kLayerArgs, 4, v, i)) return nullptr;
    MlpLayer y{};
    y.p = v[0].handle<Pattern>();
    y.vals = v[1].f32();
    y.bias = v[2].f32();
    y.relu = v[3].flag;
    need_layer(a, l, "vals", v[1].len, y.p->nnz, "nnz");
    if (v[2].present) need_layer(a, l, "bias", v[2].len, y.p->rows, "rows");
    if (a.ok() && l > 0 && prep->layers.back().p->rows != y.p->cols)
      a.fail(true, "layer %zu takes %lld inputs but layer %zu gives %lld", l, (long long)y.p->cols, l - 1,
             (long long)prep->layers.back().p->rows);
    if (a.ok() && (y.p->rows == 0 || y.p->cols == 0)) a.fail(true, "layer %zu has an empty weight", l);
    if (!a.ok() || !a.read(kLayerGradArgs, 6, v + 4, i + 4)) return nullptr;
    y.gvals = v[4].f32();
    y.gbias = v[5].f32();
    y.w0 = v[6].f32();
    y.w1 = v[7].f32();
    y.b0 = v[8].f32();
    y.b1 = v[9].f32();
    need_layer(a, l, "gvals", v[4].len, y.p->nnz, "nnz");
    if (v[5].present) need_layer(a, l, "gbias", v[5].len, y.p->rows, "rows");
    // Everything the step writes must be its own memory.
    for (size_t u = 1; u < kPerLayer && a.ok(); u++)
      for (size_t w = u + 1; w < kPerLayer && a.ok(); w++)
        if (u != 3 && w != 3 && lth::overlaps(v[u].data, v[u].len * 4, v[w].data, v[w].len * 4))
          a.fail(true, "layer %zu: the values, gradients and optimiser state must not share memory", l);
    if (!a.ok()) return nullptr;
    prep->layers.push_back(y);
    prep->stateLen.push_back({v[6].len, v[7].len, v[8].len, v[9].len});
    prep->stateGiven.push_back({v[6].present, v[7].present, v[8].present, v[9].present});
  }
  prep->bounds = part_bounds(*prep->layers[0].p, prep->parts);
  return wrap_holding_args(a, std::move(prep));
}

// sparseMlpStep(prepared, src, srcLabels, indices, from, n, rule, losses) -> mean loss of
// the last step run. The layers are a sparseMlpPrepare handle's; the batch is rows
// indices[from .. from + n) of src [samples, inputs] (row-major) with their labels. The
// last layer's outputs are the logits. Adds the gradient of the mean softmax
// cross-entropy to gvals and gbias; with a rule (Float64Array [kind (1 Adam, 2 SGD), lr,
// beta1, beta2, eps, step, momentum, weightDecay], or null for none) and a finite loss,
// then applies the update to vals and bias from their gradients (zeroing them) and state,
// as adam / sgd. With losses (a Float64Array, or null for one step), runs losses.length
// steps on consecutive batches, the rule's step count advancing by one a step, writes
// each step's mean loss, and stops after a step whose loss is not finite. Every index and
// label is checked before the first step.
constexpr ArgSpec kSparseMlpStepArgs[] = {
    arg::handle("prepared", kSparseMlpPrepare), arg::f32("src"),    arg::i32("srcLabels"),
    arg::i32("indices"),                        arg::dim("from"),   arg::dim("n", 1),
    arg::f64_or_null("rule"),                   arg::f64_or_null("losses")};

napi_value SparseMlpStep(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "sparseMlpStep", kSparseMlpStepArgs);
  if (!a.ok()) return nullptr;
  PreparedMlp& prep = *a[0].handle<PreparedMlp>();
  if (!patterns_usable(a, prep.layers)) return nullptr;
  const float* src = a[1].f32();
  const size_t lsrc = a[1].len;
  const int32_t* srcLabels = a[2].i32();
  const int32_t* indices = a[3].i32();
  const size_t lidx = a[3].len;
  const int64_t from = a[4].dim(), n = a[5].dim();
  const bool hasRule = a[6].present, hasLosses = a[7].present;
  double* losses = a[7].f64();
  const int64_t steps = hasLosses ? (int64_t)a[7].len : 1;
  if (steps < 1) a.fail(true, "losses must hold at least one step");
  lth::UpdateRule rule{};
  lth::read_update_rule(a, a[6], rule);
  if (!a.ok()) return nullptr;
  MlpStep s;
  s.rule = hasRule ? &rule : nullptr;
  s.layers = prep.layers;
  for (size_t l = 0; l < s.layers.size() && hasRule && a.ok(); l++) {
    // Adam needs both moments, SGD its momentum buffer; a bias is updated with its gradient.
    MlpLayer& y = s.layers[l];
    float** state[4] = {&y.w0, &y.w1, &y.b0, &y.b1};
    for (int k = 0; k < 4 && a.ok(); k++) {
      const bool wanted = (k % 2 == 0 || rule.adam) && (k < 2 || y.bias);
      if (wanted && !prep.stateGiven[l][k]) a.fail(false, "layer %zu: %s must be a Float32Array for the update", l, lth::kStateName[k]);
      if (wanted) need_layer(a, l, lth::kStateName[k], prep.stateLen[l][k], k < 2 ? y.p->nnz : y.p->rows, k < 2 ? "nnz" : "rows");
      if (!wanted) *state[k] = nullptr;
    }
    // A given gbias is not null: it holds rows >= 1 values (checked when prepared).
    if (a.ok() && y.bias && !y.gbias) a.fail(false, "layer %zu: gbias must be a Float32Array for the update", l);
  }
  if (!a.ok()) return nullptr;
  const int64_t inputs = s.layers[0].p->cols, classes = s.layers.back().p->rows;
  const int64_t samples = (int64_t)(lsrc / (size_t)inputs);
  if (a.ok() && (int64_t)lsrc % inputs != 0)
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
  a.need("srcLabels", a[2].len, samples, 1, "samples");
  a.need("indices", lidx, from + steps * n, 1, hasLosses ? "from+n*steps" : "from+n");
  if (!a.ok()) return nullptr;
  tMlpLabels.resize((size_t)(steps * n));
  int32_t* labels = tMlpLabels.data();
  if (!lth::batch_labels(a, indices, from, steps, n, srcLabels, samples, classes, labels)) return nullptr;
  s.src = src;
  s.n = n;
  s.ld = round16(n);
  s.parts = prep.parts;
  s.bounds = prep.bounds.data();
  int64_t laterWork = 0;
  for (size_t l = 1; l < s.layers.size(); l++) laterWork += s.layers[l].p->nnz * s.ld;
  s.split = s.parts > 1 && laterWork >= kSplitWork;
  place_buffers(s);
  lth::BatchAhead& panels = tPanels;
  FtzScope ftz;
  double loss = 0;
  for (int64_t step = 0, at = from; step < steps; step++, at += n) {
    s.rows = indices + at;
    // The input panels: gathered ahead by the step before when it read the same rows of
    // the same src (which must not change in between, see Backend.sparseMlpStep).
    s.gathered = panels.holds(src, lsrc, inputs, s.ld, s.rows, n);
    panels.ahead = false;
    s.act[0] = aligned64(panels.in[panels.cur]);
    // The next batch, rows indices[at + n .. at + 2n), when it is whole and valid (checked
    // above when this call runs it), and another part's thread can gather it.
    s.nextRows = nullptr;
    s.nextIn = nullptr;
    if (s.parts > 1 && at + 2 * n <= (int64_t)lidx) {
      panels.rows.assign(indices + at + n, indices + at + 2 * n);
      if (at + 2 * n <= from + steps * n ||
          std::all_of(panels.rows.begin(), panels.rows.end(), [&](int32_t r) { return r >= 0 && r < samples; })) {
        s.nextRows = panels.rows.data();
        s.nextIn = aligned64(panels.in[panels.cur ^ 1]);
      }
    }
    s.ready.store(0, std::memory_order_relaxed);
    loss = mlp_step(s, labels + (at - from), step + 1 < steps ? s.nextIn : nullptr);
    if (s.nextIn) {
      panels.cur ^= 1;
      panels.gathered(src, lsrc, inputs, s.ld);
    }
    if (hasLosses) losses[step] = loss;
    if (!std::isfinite(loss)) break;
    rule.step += 1;
  }
  return lth::number_value(env, loss);
}

// ------------------------------------------------------------- dense gradients (RigL)

// Zeroes columns [n, end of its panel) of the panel holding column n of a [features, ld]
// activation, so that a product over whole panels adds nothing from them.
void zero_panel_tail(float* xT, int64_t features, int64_t n) {
  if (n % 64 == 0) return;
  float* panel = xT + n / 64 * features * 64;
  for (int64_t f = 0; f < features; f++) std::fill(panel + f * 64 + n % 64, panel + f * 64 + 64, 0.0f);
}

// out [rows, cols] = Σ_c gyT[r, c]·xT[i, c] over the batch columns: the weight gradient
// of a layer at every entry, as if it were dense, one GEMM (gy·xᵀ) per panel of 64
// columns added in panel order. The tails of the last panels must be zero.
void dense_weight_grad(const float* gyT, const float* xT, float* out, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t p = 0; p < panel_cols(ld) / 64; p++)
    lth::matmul(lth::GemmArgs{gyT + p * rows * 64, xT + p * cols * 64, out, rows, 64, cols, false, true, p > 0});
}

// sparseMlpDenseGrad(prepared, src, srcLabels, indices, from, n, ...outs) -> mean loss.
// The gradient of the mean softmax cross-entropy of the samples indices[from .. from + n)
// of src at every entry of layer l's weight, as if it were dense, into outs[l] ([rows,
// cols] row-major, overwritten) for each layer whose out is a Float32Array (null: not
// wanted): the chain's forward and backward passes as in a step (sparse, split across
// the pool as sparse_forward and sparse_input_grad are), down to the lowest layer wanted,
// then a GEMM per wanted layer. Changes no weight, gradient or state. The batch's input
// panels are those a step gathered ahead when it has the same rows, else gathered here
// and left for the next step. Results do not depend on the thread count.
constexpr ArgSpec kDenseGradArgs[] = {arg::handle("prepared", kSparseMlpPrepare),
                                      arg::f32("src"),
                                      arg::i32("srcLabels"),
                                      arg::i32("indices"),
                                      arg::dim("from"),
                                      arg::dim("n", 1)};
constexpr size_t kDenseGradFixed = sizeof kDenseGradArgs / sizeof kDenseGradArgs[0];

napi_value SparseMlpDenseGrad(napi_env env, napi_callback_info info) {
  lth::VarArgs a(env, info, "sparseMlpDenseGrad", kDenseGradFixed);
  ArgValue v[kDenseGradFixed] = {};
  if (!a.read(kDenseGradArgs, kDenseGradFixed, v)) return nullptr;
  PreparedMlp& prep = *v[0].handle<PreparedMlp>();
  if (!patterns_usable(a, prep.layers)) return nullptr;
  const size_t L = prep.layers.size();
  if (a.argc() != kDenseGradFixed + L) {
    a.fail(false, "expected %zu outs (one per layer, or null) after n, got %zu", L,
           a.argc() > kDenseGradFixed ? a.argc() - kDenseGradFixed : (size_t)0);
    return nullptr;
  }
  const float* src = v[1].f32();
  const size_t lsrc = v[1].len;
  const int32_t* indices = v[3].i32();
  const int64_t from = v[4].dim(), n = v[5].dim();
  const int64_t inputs = prep.layers[0].p->cols, classes = prep.layers.back().p->rows;
  std::vector<float*> outs(L, nullptr);
  size_t lowest = L;
  for (size_t l = 0; l < L && a.ok(); l++) {
    static constexpr ArgSpec kOut[] = {arg::f32_or_null("out")};
    ArgValue o{};
    if (!a.read(kOut, 1, &o, kDenseGradFixed + l)) return nullptr;
    if (!o.present) continue;
    const MlpLayer& y = prep.layers[l];
    need_layer(a, l, "out", o.len, y.p->rows * y.p->cols, "rows*cols");
    for (const MlpLayer& z : prep.layers)
      if (a.ok() && (lth::overlaps(o.data, o.len * 4, z.vals, (size_t)z.p->nnz * 4) ||
                     lth::overlaps(o.data, o.len * 4, z.bias, z.bias ? (size_t)z.p->rows * 4 : 0) ||
                     lth::overlaps(o.data, o.len * 4, src, lsrc * 4)))
        a.fail(true, "out %zu must not share memory with the chain's weights or src", l);
    for (size_t k = 0; k < l && a.ok(); k++)
      if (outs[k] && lth::overlaps(o.data, o.len * 4, outs[k], (size_t)(prep.layers[k].p->rows * prep.layers[k].p->cols) * 4))
        a.fail(true, "outs %zu and %zu share memory", k, l);
    outs[l] = o.f32();
    lowest = std::min(lowest, l);
  }
  const int64_t samples = (int64_t)(lsrc / (size_t)inputs);
  if (a.ok() && (int64_t)lsrc % inputs != 0)
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
  a.need("srcLabels", v[2].len, samples, 1, "samples");
  a.need("indices", v[3].len, from + n, 1, "from+n");
  if (!a.ok()) return nullptr;
  tMlpLabels.resize((size_t)n);
  int32_t* labels = tMlpLabels.data();
  if (!lth::batch_labels(a, indices, from, 1, n, v[2].i32(), samples, classes, labels)) return nullptr;
  MlpStep s;
  s.layers.assign(prep.layers.begin(), prep.layers.end());
  s.n = n;
  s.ld = round16(n);
  s.parts = 1;
  place_buffers(s);
  lth::BatchAhead& panels = tPanels;
  const int32_t* rows = indices + from;
  s.act[0] = aligned64(panels.in[panels.cur]);
  FtzScope ftz;
  if (!panels.holds(src, lsrc, inputs, s.ld, rows, n)) {
    gS->gatherPanels(src, inputs, rows, n, 0, inputs, s.act[0], s.ld);
    panels.rows.assign(rows, rows + n);
    panels.gathered(src, lsrc, inputs, s.ld);
  }
  for (size_t l = 0; l < L; l++) {
    const MlpLayer& y = s.layers[l];
    lth::sparse_forward(*y.p, y.vals, s.act[l], s.act[l + 1], y.bias, n, s.ld, y.relu);
  }
  const double loss = gS->softmaxXent(s.act[L], s.grad[L - 1], labels, s.layers[L - 1].p->rows, n, s.ld,
                                      (float)(1.0 / (double)n));
  for (size_t l = L; l-- > lowest;) {
    const MlpLayer& y = s.layers[l];
    if (y.relu) gS->reluMask(s.grad[l], s.act[l + 1], y.p->rows * panel_cols(s.ld));
    if (outs[l]) {
      zero_panel_tail(s.grad[l], y.p->rows, n);
      zero_panel_tail(s.act[l], y.p->cols, n);
      dense_weight_grad(s.grad[l], s.act[l], outs[l], y.p->rows, y.p->cols, s.ld);
    }
    if (l > lowest) lth::sparse_input_grad(*y.p, y.vals, s.grad[l], s.grad[l - 1], s.ld);
  }
  return lth::number_value(env, loss / (double)n);
}

// ------------------------------------------------------------------ fused MLP evaluation

// The loss and accuracy of a prepared chain over a whole data set in one call, in chunks
// of 64 samples: one panel, the kernels' best shape (at 1,000 columns they are L2-bound),
// and a chunk's activations stay in its core's cache. Chunks run as parts on the pool,
// each on its thread's own workspace; their sums are added in chunk order, so results do
// not depend on threads.
constexpr int64_t kEvalChunk = 64;

struct MlpEval {
  const std::vector<MlpLayer>& layers;
  const float* src;
  const int32_t* labels;
  int64_t samples;
  std::vector<double> loss;
  std::vector<int64_t> correct;
};

thread_local std::vector<float> tEvalWorkspace;

void mlp_eval_chunk(void* ctx, int chunk) {
  MlpEval& e = *static_cast<MlpEval*>(ctx);
  const size_t L = e.layers.size();
  const int64_t c0 = (int64_t)chunk * kEvalChunk, m = std::min(kEvalChunk, e.samples - c0), ld = round16(m);
  int64_t floats = 16 + e.layers[0].p->cols * kEvalChunk;
  for (const MlpLayer& y : e.layers) floats += y.p->rows * kEvalChunk;
  if (tEvalWorkspace.size() < (size_t)floats) tEvalWorkspace.resize((size_t)floats);
  float* w = aligned64(tEvalWorkspace);
  std::vector<float*> act{w};
  w += e.layers[0].p->cols * kEvalChunk;
  for (const MlpLayer& y : e.layers) {
    act.push_back(w);
    w += y.p->rows * kEvalChunk;
  }
  FtzScope ftz;  // the pool's threads have it on; the caller may not
  gS->toPanels(e.src + c0 * e.layers[0].p->cols, act[0], m, e.layers[0].p->cols, ld);
  for (size_t l = 0; l < L; l++) {
    const MlpLayer& y = e.layers[l];
    gS->forward(*y.p, y.vals, act[l], act[l + 1], y.bias, 0, y.p->rows, m, ld, y.relu);
  }
  e.loss[chunk] = 0;
  e.correct[chunk] = 0;
  gS->evalLogits(act[L], e.labels + c0, e.layers[L - 1].p->rows, m, ld, &e.loss[chunk], &e.correct[chunk]);
}

// sparseMlpEval(prepared, src, srcLabels, out) -> undefined. Every sample of src
// [samples, inputs] (row-major) through the prepared chain (its patterns, vals, bias and
// relu); out (a Float64Array of 2) gets the summed softmax cross-entropy and the number
// of samples whose first maximum logit is their label.
constexpr ArgSpec kSparseMlpEvalArgs[] = {arg::handle("prepared", kSparseMlpPrepare), arg::f32("src"),
                                          arg::i32("srcLabels"), arg::f64("out")};

napi_value SparseMlpEval(napi_env env, napi_callback_info info) {
  Args<4> a(env, info, "sparseMlpEval", kSparseMlpEvalArgs);
  if (!a.ok()) return nullptr;
  const PreparedMlp& prep = *a[0].handle<PreparedMlp>();
  if (!patterns_usable(a, prep.layers)) return nullptr;
  const size_t lsrc = a[1].len;
  const int32_t* srcLabels = a[2].i32();
  double* out = a[3].f64();
  a.need("out", a[3].len, 2, 1, "2");
  if (!a.ok()) return nullptr;
  MlpEval e{prep.layers, a[1].f32(), srcLabels, 0, {}, {}};
  const int64_t inputs = e.layers[0].p->cols, classes = e.layers.back().p->rows;
  if ((int64_t)lsrc % inputs != 0) {
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
    return nullptr;
  }
  e.samples = (int64_t)lsrc / inputs;
  a.need("srcLabels", a[2].len, e.samples, 1, "samples");
  if (!a.ok()) return nullptr;
  for (int64_t i = 0; i < e.samples; i++)
    if (srcLabels[i] < 0 || srcLabels[i] >= classes) {
      a.fail(true, "srcLabels[%lld] = %d is outside [0, %lld)", (long long)i, srcLabels[i], (long long)classes);
      return nullptr;
    }
  const int64_t chunks = (e.samples + kEvalChunk - 1) / kEvalChunk;
  if (chunks >= 65536) {
    a.fail(true, "%lld samples are more than one call evaluates (%lld)", (long long)e.samples, (long long)(65535 * kEvalChunk));
    return nullptr;
  }
  e.loss.assign((size_t)chunks, 0);
  e.correct.assign((size_t)chunks, 0);
  lth::run_parts((int)chunks, mlp_eval_chunk, &e);
  out[0] = 0;
  out[1] = 0;
  for (int64_t q = 0; q < chunks; q++) {
    out[0] += e.loss[q];
    out[1] += (double)e.correct[q];
  }
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_sparse_mlp(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"sparseMlpPrepare", SparseMlpPrepare},
      {"sparseMlpStep", SparseMlpStep},
      {"sparseMlpDenseGrad", SparseMlpDenseGrad},
      {"sparseMlpEval", SparseMlpEval}};
  return define_exports(env, exports, kExports);
}
