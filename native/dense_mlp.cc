// The fused dense MLP (see native/README.md, "Fused dense MLP step"): a chain of two or more
// dense fully connected layers prepared once (denseMlpPrepare), then whole training steps in
// one call (denseMlpStep), the minibatch's gather and the optimiser's update included, and
// the evaluation of a whole data set in one call (denseMlpEval).
//
// A step runs the graph program's kernels (src/tensor/ops.ts: linear, softmaxCrossEntropy;
// the optimiser's adam / sgd) on the same products, so it gives the graph program's numbers
// bit for bit; what it saves is the graph's per-step work in JavaScript and the dozens of
// Node-API calls a step makes there. Layer 0, the widest, is split over the pool by rows of
// its units (see Step), each part its forward product, weight gradient and update; the
// caller runs the other layers and the loss in between (the middle). Where those layers are
// small enough to run on the caller alone anyway, the other threads gather the next batch
// meanwhile, and the next step's layer-0 forward pass runs in the same pool call as this
// step's layer-0 backward pass: two pool calls a step. Every split is by whole outputs, so
// results do not depend on the thread count.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "elementwise.h"
#include "ftz.h"
#include "gemm.h"
#include "mlp_step_args.h"
#include "napi_args.h"
#include "pool.h"

namespace {

using lth::ArgSpec;
using lth::Args;
using lth::ArgValue;
using lth::FtzScope;
using lth::GemmArgs;
using lth::gK;
using lth::HoldsArgs;
using lth::wrap_holding_args;
namespace arg = lth::arg;

// The export that makes prepared chains.
constexpr char kDenseMlpPrepare[] = "denseMlpPrepare";

// One layer: y = act(x·Wᵀ + b), W [out, in] row-major.
struct DenseLayer {
  int64_t in, out;
  float *w, *b, *gw, *gb;
  bool relu;
  float *w0, *w1, *b0, *b1;  // the optimiser's state of the weight and the bias
  const float* mask;         // the weight's mask for the update (Backend.adam's), or null
};

// A chain checked once for denseMlpStep and denseMlpEval, with references that keep its
// arrays alive (they must keep their memory: not be transferred).
struct PreparedDense : HoldsArgs {
  explicit PreparedDense(napi_env e) : HoldsArgs(kDenseMlpPrepare, e) {}
  std::vector<DenseLayer> layers;
  std::vector<std::array<size_t, 4>> stateLen;  // lengths of w0, w1, b0, b1
  std::vector<std::array<bool, 4>> stateGiven;
  std::vector<float> zeros;  // the bias of a layer without one (its activation still applies)
  // The batches of two steps, rows of the inputs (see DenseMlpStep).
  lth::BatchAhead batch;
};

// a.need(...) for "layer l <what>", the name formatted only when the check fails.
void need_layer(lth::ArgReader& a, size_t l, const char* what, size_t len, int64_t count, const char* of) {
  if (!a.ok() || (int64_t)len >= count) return;
  char name[64];
  std::snprintf(name, sizeof name, "layer %zu %s", l, what);
  a.need(name, len, count, 1, of);
}

// The forward pass of m samples x [m, in]: act[l + 1] [m, out_l] = act(act[l]·Wᵀ + b), as linear() does.
void forward(const PreparedDense& prep, const float* x, float* const* act, int64_t m) {
  for (size_t l = 0; l < prep.layers.size(); l++) {
    const DenseLayer& y = prep.layers[l];
    const float* in = l ? act[l] : x;
    lth::matmul(GemmArgs{in, y.w, act[l + 1], m, y.in, y.out, false, true, false});
    if (y.b || y.relu) gK->biasAct(act[l + 1], y.b ? y.b : prep.zeros.data(), act[l + 1], m, y.out, y.relu);
  }
}

// One training step's buffers. Layer 0, the widest in an MLP, keeps its outputs and their
// gradient transposed, [out0, n]: then each part of the pool owns a range of whole rows of
// them (a range of layer 0's units), and so the same rows of its weight, gradient and
// optimiser state, for the forward GEMM, the weight gradient's GEMM and the update. Each
// element of every product is still the same FMA chain in the same order as the graph's
// (the micro-kernel's chain depends on k only, not on which operand is which), and the bias,
// activation and their gradients are elementwise, so the numbers are the graph's.
struct Step {
  const PreparedDense* prep;
  int64_t n;
  const float* x;      // the batch [n, in0]
  const float* xNext;  // the next step's, when gathered ahead
  float *h0T, *g0T;    // layer 0's outputs and their gradient, [out0, n]
  const lth::UpdateRule* rule;  // the update to apply, or null
  int parts;
};

// Part q's rows of layer 0: whole tiles of the micro-kernel's rows, about equal shares.
void part_rows(const Step& s, int q, int64_t& r0, int64_t& r1) {
  const int64_t out = s.prep->layers[0].out, tiles = (out + gK->mr - 1) / gK->mr;
  r0 = std::min(out, tiles * q / s.parts * gK->mr);
  r1 = std::min(out, tiles * (q + 1) / s.parts * gK->mr);
}

// Phase 1, part q: its rows of h0T = act(W0·xᵀ + b0) for the batch x.
void forward_rows(const Step& s, const float* x, int q, float* scratch) {
  const DenseLayer& y = s.prep->layers[0];
  int64_t r0, r1;
  part_rows(s, q, r0, r1);
  gK->gemm(GemmArgs{y.w, x, s.h0T, y.out, y.in, s.n, false, true, false}, r0, r1, 0, s.n, scratch);
  for (int64_t u = r0; u < r1; u++) {
    float* h = s.h0T + u * s.n;
    const float b = y.b ? y.b[u] : 0.0f;
    if (!y.b && !y.relu) continue;
    // As biasAct: the sum, then max(0, ·) with NaN kept.
    for (int64_t j = 0; j < s.n; j++) {
      const float v = h[j] + b;
      h[j] = y.relu && v < 0.0f ? 0.0f : v;
    }
  }
}

void first_forward(void* ctx, int q, float* scratch) {
  const Step& s = *static_cast<const Step*>(ctx);
  forward_rows(s, s.x, q, scratch);
}

// Phase 3, part q: its rows of layer 0's weight and bias gradients (as reluBackward, the
// weight gradient's GEMM and sumRows), then their update.
void first_backward(void* ctx, int q, float* scratch) {
  const Step& s = *static_cast<const Step*>(ctx);
  const DenseLayer& y = s.prep->layers[0];
  int64_t r0, r1;
  part_rows(s, q, r0, r1);
  float* g = s.g0T + r0 * s.n;
  if (y.relu) gK->reluBackward(g, s.h0T + r0 * s.n, g, (r1 - r0) * s.n);
  gK->gemm(GemmArgs{s.g0T, s.x, y.gw, y.out, s.n, y.in, false, false, true}, r0, r1, 0, y.in, scratch);
  for (int64_t u = r0; y.gb && u < r1; u++) {
    double acc = 0;
    for (int64_t j = 0; j < s.n; j++) acc += (double)s.g0T[u * s.n + j];
    y.gb[u] = (float)((double)y.gb[u] + acc);
  }
  if (!s.rule) return;
  // Elementwise, so the part's own rows give the values a whole update would.
  const int64_t b = r0 * y.in;
  lth::update_params(*s.rule, y.w + b, y.gw + b, y.w0 + b, y.w1 ? y.w1 + b : nullptr, y.mask ? y.mask + b : nullptr,
                     (r1 - r0) * y.in);
  if (y.b) lth::update_params(*s.rule, y.b + r0, y.gb + r0, y.b0 + r0, y.b1 ? y.b1 + r0 : nullptr, nullptr, r1 - r0);
}

// Phase 3 of one step and phase 1 of the next in one go, when the next batch is gathered:
// the part's rows of W0, just updated, are the ones its forward reads.
void first_backward_forward(void* ctx, int q, float* scratch) {
  first_backward(ctx, q, scratch);
  const Step& s = *static_cast<const Step*>(ctx);
  forward_rows(s, s.xNext, q, scratch);
}

// Runs fn over s.parts parts on the pool (on the caller alone when another JavaScript
// thread has it).
void run_layer0(Step& s, void (*fn)(void*, int, float*)) {
  float* scratch = lth::caller_scratch();
  if (lth::run_parts_scratch(lth::thread_count(), s.parts, fn, &s, scratch)) return;
  for (int q = 0; q < s.parts; q++) fn(&s, q, scratch);
}

// The caller's part between them: layers 1 .. L-1 forward, the loss, their backward pass
// and update down to g0T, as linear() and softmaxCrossEntropy() compute them (layer 1 reads
// h0T and writes g0T through transposed operands). Returns the mean loss, rounded to float.
float middle(Step& s, float* const* act, float* const* grad, const int32_t* labels) {
  const PreparedDense& prep = *s.prep;
  const size_t L = prep.layers.size();
  const int64_t n = s.n;
  for (size_t l = 1; l < L; l++) {
    const DenseLayer& y = prep.layers[l];
    lth::matmul(l == 1 ? GemmArgs{s.h0T, y.w, act[l], n, y.in, y.out, true, true, false}
                       : GemmArgs{act[l - 1], y.w, act[l], n, y.in, y.out, false, true, false});
    if (y.b || y.relu) gK->biasAct(act[l], y.b ? y.b : prep.zeros.data(), act[l], n, y.out, y.relu);
  }
  const int64_t classes = prep.layers[L - 1].out;
  const double total = lth::softmax_xent(act[L - 1], labels, n, classes, grad[L - 1], 1.0 / (double)n);
  const float loss = (float)(total / (double)n);
  if (!std::isfinite(loss)) return loss;
  for (size_t l = L - 1; l >= 1; l--) {
    const DenseLayer& y = prep.layers[l];
    float* g = grad[l];
    if (y.relu) gK->reluBackward(g, act[l], g, n * y.out);
    lth::matmul(l == 1 ? GemmArgs{g, s.h0T, y.gw, y.out, n, y.in, true, true, true}
                       : GemmArgs{g, act[l - 1], y.gw, y.out, n, y.in, true, false, true});
    if (y.gb) gK->sumRows(g, y.gb, n, y.out, y.out, true);
    float* gin = l == 1 ? s.g0T : grad[l - 1];
    std::fill(gin, gin + n * y.in, 0.0f);
    lth::matmul(l == 1 ? GemmArgs{y.w, g, gin, y.in, y.out, n, true, true, true}
                       : GemmArgs{g, y.w, gin, n, y.out, y.in, false, false, true});
    if (!s.rule) continue;
    lth::update_params_split(*s.rule, y.w, y.gw, y.w0, y.w1, y.mask, y.in * y.out);
    if (y.b) lth::update_params_split(*s.rule, y.b, y.gb, y.b0, y.b1, nullptr, y.out);
  }
  return loss;
}

// Phase 2 with the next batch gathered meanwhile: the caller runs the middle (part 0) while
// the other threads gather (the other parts).
struct MiddleAhead {
  Step& s;
  float* const* act;
  float* const* grad;
  const int32_t* labels;
  const float* src;
  const int32_t* rows;
  float* next;
  float loss;
};

// The next batch's rows are gathered in kAheadChunks parts, which another thread takes
// while the caller runs the middle, and the caller too once it is done: in a LeNet at 25% of
// its neurons, gathering 60 rows from memory takes longer than the middle layers.
constexpr int kAheadChunks = 4;

void middle_or_gather(void* ctx, int part) {
  MiddleAhead& m = *static_cast<MiddleAhead*>(ctx);
  if (part == 0) {
    m.loss = middle(m.s, m.act, m.grad, m.labels);
    return;
  }
  const int64_t in = m.s.prep->layers[0].in, b = m.s.n * (part - 1) / kAheadChunks, e = m.s.n * part / kAheadChunks;
  lth::gather_rows(m.src, in, m.rows + b, e - b, m.next + b * in);
}

// A thread's workspace, 64-byte aligned pieces of the given float counts.
thread_local std::vector<float> tWorkspace;

std::vector<float*> carve(const std::vector<int64_t>& sizes) {
  size_t total = 16;
  for (int64_t z : sizes) total += (size_t)(z + 15) / 16 * 16;
  if (tWorkspace.size() < total) tWorkspace.resize(total);
  float* w = tWorkspace.data() + (16 - (reinterpret_cast<uintptr_t>(tWorkspace.data()) / 4) % 16) % 16;
  std::vector<float*> out;
  for (int64_t z : sizes) {
    out.push_back(w);
    w += (z + 15) / 16 * 16;
  }
  return out;
}

// denseMlpPrepare(...layers) -> a handle for denseMlpStep and denseMlpEval. Each layer is
// twelve arguments: in, out, weight [out*in], bias | null, relu, gweight [out*in],
// gbias | null, the optimiser state w0, w1, b0, b1 (each a Float32Array or null), then the
// weight's mask [out*in] | null; at least two layers. Checks their sizes, that the layers
// chain, and that no two of a layer's arrays share memory.
constexpr ArgSpec kLayerArgs[] = {arg::dim("in", 1),      arg::dim("out", 1),         arg::f32("weight"),
                                  arg::f32_or_null("bias"), arg::flag("relu"),          arg::f32("gweight"),
                                  arg::f32_or_null("gbias"), arg::f32_or_null("w0"),    arg::f32_or_null("w1"),
                                  arg::f32_or_null("b0"),   arg::f32_or_null("b1"),     arg::f32_or_null("mask")};
constexpr size_t kPerLayer = sizeof kLayerArgs / sizeof kLayerArgs[0];

napi_value DenseMlpPrepare(napi_env env, napi_callback_info info) {
  lth::VarArgs a(env, info, kDenseMlpPrepare, kPerLayer);
  if (!a.ok()) return nullptr;
  if (a.argc() % kPerLayer != 0) {
    a.fail(false, "expected %zu arguments per layer, got %zu", kPerLayer, a.argc());
    return nullptr;
  }
  if (a.argc() < 2 * kPerLayer) {
    a.fail(false, "expected at least two layers (%zu arguments), got %zu arguments", 2 * kPerLayer, a.argc());
    return nullptr;
  }
  auto prep = std::make_unique<PreparedDense>(env);
  const size_t L = a.argc() / kPerLayer;
  int64_t widest = 0;
  for (size_t l = 0; l < L; l++) {
    ArgValue v[kPerLayer] = {};
    if (!a.read(kLayerArgs, kPerLayer, v, kPerLayer * l)) return nullptr;
    DenseLayer y{v[0].dim(), v[1].dim(), v[2].f32(), v[3].f32(), v[5].f32(), v[6].f32(), v[4].flag,
                 v[7].f32(), v[8].f32(), v[9].f32(), v[10].f32(), v[11].f32()};
    need_layer(a, l, "weight", v[2].len, y.in * y.out, "in*out");
    need_layer(a, l, "gweight", v[5].len, y.in * y.out, "in*out");
    if (v[11].present) need_layer(a, l, "mask", v[11].len, y.in * y.out, "in*out");
    if (v[3].present) need_layer(a, l, "bias", v[3].len, y.out, "out");
    if (v[6].present) need_layer(a, l, "gbias", v[6].len, y.out, "out");
    if (a.ok() && l > 0 && prep->layers.back().out != y.in)
      a.fail(true, "layer %zu takes %lld inputs but layer %zu gives %lld", l, (long long)y.in, l - 1,
             (long long)prep->layers.back().out);
    // Everything the step writes must be its own memory.
    for (size_t u = 2; u < kPerLayer && a.ok(); u++)
      for (size_t w = u + 1; w < kPerLayer && a.ok(); w++)
        if (u != 4 && w != 4 && lth::overlaps(v[u].data, v[u].len * 4, v[w].data, v[w].len * 4))
          a.fail(true, "layer %zu: the weights, gradients and optimiser state must not share memory", l);
    if (!a.ok()) return nullptr;
    prep->layers.push_back(y);
    prep->stateLen.push_back({v[7].len, v[8].len, v[9].len, v[10].len});
    prep->stateGiven.push_back({v[7].present, v[8].present, v[9].present, v[10].present});
    widest = std::max(widest, y.out);
  }
  prep->zeros.assign((size_t)widest, 0.0f);
  return wrap_holding_args(a, std::move(prep));
}

// denseMlpStep(prepared, src, srcLabels, indices, from, n, rule, losses) -> the number of
// steps run. losses.length steps on consecutive batches: step s on rows
// indices[from + s·n .. from + (s+1)·n) of src [samples, inputs] (row-major) with their
// labels. Each step adds the gradient of the mean softmax cross-entropy of the last
// layer's outputs to gweight and gbias and, with a rule (Float64Array [kind (1 Adam, 2
// SGD), lr, beta1, beta2, eps, step, momentum, weightDecay], or null) and a finite loss,
// applies the update to weight and bias (zeroing the gradients; the rule's step count
// advances by one a step). Writes each step's mean loss, rounded to float as the graph's
// loss tensor holds it, and stops after a step whose loss is not finite (which neither
// back-propagates nor updates). Every index and label is checked before the first step.
constexpr ArgSpec kDenseMlpStepArgs[] = {
    arg::handle("prepared", kDenseMlpPrepare), arg::f32("src"),  arg::i32("srcLabels"),
    arg::i32("indices"),                       arg::dim("from"), arg::dim("n", 1),
    arg::f64_or_null("rule"),                  arg::f64("losses")};

napi_value DenseMlpStep(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "denseMlpStep", kDenseMlpStepArgs);
  if (!a.ok()) return nullptr;
  PreparedDense& prep = *a[0].handle<PreparedDense>();
  const float* src = a[1].f32();
  const size_t lsrc = a[1].len;
  const int32_t* srcLabels = a[2].i32();
  const int32_t* indices = a[3].i32();
  const size_t lidx = a[3].len;
  const int64_t from = a[4].dim(), n = a[5].dim();
  const bool hasRule = a[6].present;
  double* losses = a[7].f64();
  const int64_t steps = (int64_t)a[7].len;
  if (steps < 1) a.fail(true, "losses must hold at least one step");
  lth::UpdateRule rule{};
  lth::read_update_rule(a, a[6], rule);
  const size_t L = prep.layers.size();
  for (size_t l = 0; l < L && hasRule && a.ok(); l++) {
    // Adam needs both moments, SGD its momentum buffer; a bias is updated with its gradient.
    const DenseLayer& y = prep.layers[l];
    for (int k = 0; k < 4 && a.ok(); k++) {
      if (!((k % 2 == 0 || rule.adam) && (k < 2 || y.b))) continue;
      if (!prep.stateGiven[l][k]) a.fail(false, "layer %zu: %s must be a Float32Array for the update", l, lth::kStateName[k]);
      need_layer(a, l, lth::kStateName[k], prep.stateLen[l][k], k < 2 ? y.in * y.out : y.out, k < 2 ? "in*out" : "out");
    }
    if (a.ok() && y.b && !y.gb) a.fail(false, "layer %zu: gbias must be a Float32Array for the update", l);
  }
  if (!a.ok()) return nullptr;
  const int64_t inputs = prep.layers[0].in, classes = prep.layers.back().out;
  const int64_t samples = (int64_t)(lsrc / (size_t)inputs);
  if ((int64_t)lsrc % inputs != 0)
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
  a.need("srcLabels", a[2].len, samples, 1, "samples");
  a.need("indices", a[3].len, from + steps * n, 1, "from+n*steps");
  if (!a.ok()) return nullptr;
  std::vector<int32_t> labels((size_t)(steps * n));
  if (!lth::batch_labels(a, indices, from, steps, n, srcLabels, samples, classes, labels.data())) return nullptr;
  // Workspace: layer 0's outputs and their gradient (transposed), the other layers'
  // outputs and their gradients (act[l], grad[l] for l >= 1). The batch: prep.batch.
  std::vector<int64_t> sizes{n * prep.layers[0].out, n * prep.layers[0].out};
  for (size_t l = 1; l < L; l++) sizes.push_back(n * prep.layers[l].out);
  for (size_t l = 1; l < L; l++) sizes.push_back(n * prep.layers[l].out);
  const std::vector<float*> w = carve(sizes);
  std::vector<float*> act(L, nullptr), grad(L, nullptr);
  for (size_t l = 1; l < L; l++) {
    act[l] = w[1 + l];
    grad[l] = w[L + l];
  }
  lth::BatchAhead& batch = prep.batch;
  for (std::vector<float>& buf : batch.in)
    if (buf.size() < (size_t)(n * inputs)) buf.resize((size_t)(n * inputs));
  const int64_t tiles = (prep.layers[0].out + gK->mr - 1) / gK->mr;
  const int threads = lth::thread_count();
  Step st{&prep, n, nullptr, nullptr, w[0], w[1], hasRule ? &rule : nullptr, (int)std::min<int64_t>(threads, tiles)};
  // Another thread gathers the next batch while the caller runs the middle layers when they
  // are small enough to run on the caller alone anyway (else their GEMMs and updates take
  // the pool).
  bool small = threads > 1;
  for (size_t l = 1; l < L; l++)
    small = small && (double)n * (double)prep.layers[l].in * (double)prep.layers[l].out < lth::kGemmParallelMinWork &&
            prep.layers[l].in * prep.layers[l].out < 65536;
  FtzScope ftz;
  int64_t ran = 0;
  bool forwarded = false;
  for (int64_t s = 0, at = from; s < steps; s++, at += n) {
    ran++;
    const int32_t* rows = indices + at;
    // The batch: gathered ahead by the step before when it read the same rows of the same
    // src (which must not change in between, see DenseMlpKernels.step).
    const bool gathered = batch.holds(src, lsrc, inputs, n, rows, n);
    batch.ahead = false;
    st.x = batch.in[batch.cur].data();
    if (!gathered) lth::gather_rows(src, inputs, rows, n, batch.in[batch.cur].data());
    // Layer 0's forward pass: run with the step before's backward pass when that step
    // gathered this batch.
    if (!forwarded) run_layer0(st, first_forward);
    forwarded = false;
    // The next batch, rows indices[at + n .. at + 2n), when it is whole and valid (checked
    // above when this call runs it).
    bool next = false;
    if (small && at + 2 * n <= (int64_t)lidx) {
      batch.rows.assign(rows + n, rows + 2 * n);
      next = at + 2 * n <= from + steps * n ||
             std::all_of(batch.rows.begin(), batch.rows.end(), [&](int32_t r) { return r >= 0 && r < samples; });
    }
    float loss;
    if (next) {
      MiddleAhead m{st, act.data(), grad.data(), labels.data() + s * n, src, batch.rows.data(),
                    batch.in[batch.cur ^ 1].data(), 0.0f};
      lth::run_parts(1 + kAheadChunks, middle_or_gather, &m, true);
      loss = m.loss;
    } else {
      loss = middle(st, act.data(), grad.data(), labels.data() + s * n);
    }
    losses[s] = loss;
    if (std::isfinite(loss) && next && s + 1 < steps) {
      st.xNext = batch.in[batch.cur ^ 1].data();
      run_layer0(st, first_backward_forward);
      forwarded = true;
    } else if (std::isfinite(loss)) {
      run_layer0(st, first_backward);
    }
    if (next) {
      batch.cur ^= 1;
      batch.gathered(src, lsrc, inputs, n);
    }
    if (!std::isfinite(loss)) break;
    rule.step += 1;
  }
  return lth::number_value(env, (double)ran);
}

// denseMlpEval(prepared, src, srcLabels, chunk, out) -> undefined. Every sample of src
// [samples, inputs] (row-major) through the prepared chain in chunks of `chunk` samples;
// out (a Float64Array of 2) gets the softmax cross-entropy summed per chunk and over
// chunks in order, and the number of samples whose first maximum logit is their label.
constexpr ArgSpec kDenseMlpEvalArgs[] = {arg::handle("prepared", kDenseMlpPrepare), arg::f32("src"),
                                         arg::i32("srcLabels"), arg::dim("chunk", 1), arg::f64("out")};

napi_value DenseMlpEval(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "denseMlpEval", kDenseMlpEvalArgs);
  if (!a.ok()) return nullptr;
  const PreparedDense& prep = *a[0].handle<PreparedDense>();
  const float* src = a[1].f32();
  const size_t lsrc = a[1].len;
  const int32_t* srcLabels = a[2].i32();
  const int64_t chunk = a[3].dim();
  double* out = a[4].f64();
  a.need("out", a[4].len, 2, 1, "2");
  if (!a.ok()) return nullptr;
  const int64_t inputs = prep.layers[0].in, classes = prep.layers.back().out;
  if ((int64_t)lsrc % inputs != 0) {
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
    return nullptr;
  }
  const int64_t samples = (int64_t)lsrc / inputs;
  a.need("srcLabels", a[2].len, samples, 1, "samples");
  if (!a.ok()) return nullptr;
  for (int64_t i = 0; i < samples; i++)
    if (srcLabels[i] < 0 || srcLabels[i] >= classes) {
      a.fail(true, "srcLabels[%lld] = %d is outside [0, %lld)", (long long)i, srcLabels[i], (long long)classes);
      return nullptr;
    }
  const size_t L = prep.layers.size();
  const int64_t m = std::min(chunk, samples);
  std::vector<int64_t> sizes;
  for (const DenseLayer& y : prep.layers) sizes.push_back(m * y.out);
  const std::vector<float*> w = carve(sizes);
  std::vector<float*> act{nullptr};
  act.insert(act.end(), w.begin(), w.end());
  FtzScope ftz;
  double loss = 0;
  int64_t correct = 0;
  for (int64_t c0 = 0; c0 < samples; c0 += chunk) {
    const int64_t k = std::min(chunk, samples - c0);
    forward(prep, src + c0 * inputs, act.data(), k);
    loss += lth::softmax_xent(act[L], srcLabels + c0, k, classes, nullptr, 0);
    correct += lth::count_correct(act[L], srcLabels + c0, k, classes);
  }
  out[0] = loss;
  out[1] = (double)correct;
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_dense_mlp(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"denseMlpPrepare", DenseMlpPrepare}, {"denseMlpStep", DenseMlpStep}, {"denseMlpEval", DenseMlpEval}};
  return define_exports(env, exports, kExports);
}
