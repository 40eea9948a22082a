// What the fused MLP programs' step exports (dense_mlp.cc, sparse_mlp.cc) share: the
// optimiser rule, the names of the optimiser state, the minibatches' rows and labels, and
// the batch buffers of a step that gathers the next batch ahead.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "elementwise.h"
#include "napi_args.h"

namespace lth {

// A fused MLP step's two batch buffers: in[cur], the batch being trained on, and the other,
// into which the step gathers the next batch ahead; and what in[cur] holds once it has:
// rows `rows` of `src` (of `len` floats), laid out for `width` inputs at `ld` columns.
struct BatchAhead {
  std::vector<float> in[2];
  int cur = 0;
  bool ahead = false;
  const float* src = nullptr;
  size_t len = 0;
  int64_t width = 0, ld = 0;
  std::vector<int32_t> rows;

  // Whether in[cur] holds rows_[0 .. n) of src_ in that layout (src must not change in
  // between, see the kernels' step).
  bool holds(const float* src_, size_t len_, int64_t width_, int64_t ld_, const int32_t* rows_, int64_t n) const {
    return ahead && src == src_ && len == len_ && width == width_ && ld == ld_ && rows.size() == (size_t)n &&
           std::equal(rows_, rows_ + n, rows.begin());
  }
  // Records that in[cur] now holds `rows` (which the caller set) of src_ in that layout.
  void gathered(const float* src_, size_t len_, int64_t width_, int64_t ld_) {
    ahead = true;
    src = src_;
    len = len_;
    width = width_;
    ld = ld_;
  }
};

// The names of a layer's optimiser state: weight moments, then bias moments.
inline const char* const kStateName[4] = {"w0", "w1", "b0", "b1"};

// Reads `r`, when given, into `rule`: a Float64Array [kind (1 Adam, 2 SGD), lr, beta1,
// beta2, eps, step, momentum, weightDecay]. A malformed one fails `a`.
inline void read_update_rule(ArgReader& a, const ArgValue& r, UpdateRule& rule) {
  if (!r.present) return;
  a.need("rule", r.len, 8, 1, "8");
  const double* v = static_cast<const double*>(r.data);
  if (a.ok() && v[0] != 1 && v[0] != 2) a.fail(true, "rule[0] must be 1 (Adam) or 2 (SGD), got %g", v[0]);
  if (a.ok()) rule = {v[0] == 1, v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
}

// Checks the rows indices[from .. from + batches·n) and their labels (each below `samples`
// and `classes`) and writes the labels. Scattered over the data set's labels, each is
// likely a cache miss, so a batch's are all requested before any is waited for.
inline bool batch_labels(ArgReader& a, const int32_t* indices, int64_t from, int64_t batches, int64_t n,
                         const int32_t* srcLabels, int64_t samples, int64_t classes, int32_t* labels) {
  for (int64_t b = from; b < from + batches * n; b += n) {
    for (int64_t i = b; i < b + n; i++) {
      if (indices[i] < 0 || indices[i] >= samples) {
        a.fail(true, "indices[%lld] = %d is outside [0, %lld)", (long long)i, indices[i], (long long)samples);
        return false;
      }
      __builtin_prefetch(srcLabels + indices[i]);
    }
    for (int64_t i = b; i < b + n; i++) {
      const int32_t label = labels[i - from] = srcLabels[indices[i]];
      if (label < 0 || label >= classes) {
        a.fail(true, "srcLabels[%d] = %d is outside [0, %lld)", indices[i], label, (long long)classes);
        return false;
      }
    }
  }
  return true;
}

}  // namespace lth
