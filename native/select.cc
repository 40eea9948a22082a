// selectByMagnitude: the mask update of dynamic sparse training (SET, RigL) picks, every
// ΔT steps, the k active weights of smallest magnitude to drop and (RigL) the k inactive
// entries of largest gradient magnitude to grow, on layers of 10^5-10^7 entries. In plain
// TypeScript the scans and the quickselect took 4-6 ms a LeNet update, as much as the
// hundred sparse steps between updates; here one pass gathers the eligible keys and a
// strided sample bounds the threshold so that nth_element runs on a few thousand of them.
//
// The result is exact and deterministic: the `count` smallest keys (|v|, or -|v| for the
// largest), ties broken by the lower index, NaN ranking as the largest magnitude; the
// indices are written in increasing order. The reference backend's implementation (a full
// sort) is the oracle.

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "bindings.h"
#include "napi_args.h"

namespace {

using lth::ArgSpec;
using lth::Args;
namespace arg = lth::arg;

// Keys sampled to bound the threshold; the bound is used when count is at most an eighth
// of the eligible entries and there are at least four samples' worth.
constexpr int64_t kSample = 4096;

using Key = std::pair<float, int32_t>;

// selectByMagnitude(values, mask, among, count, largest, out)
constexpr ArgSpec kSelectArgs[] = {arg::f32("values"), arg::f32("mask"), arg::dim("among"), arg::dim("count"), arg::flag("largest"),
                                   arg::i32("out")};

napi_value SelectByMagnitude(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "selectByMagnitude", kSelectArgs);
  if (!a.ok()) return nullptr;
  const float* values = a[0].f32();
  const float* mask = a[1].f32();
  const int64_t n = (int64_t)a[0].len, among = a[2].dim(), count = a[3].dim();
  const bool largest = a[4].flag;
  int32_t* out = a[5].i32();
  if ((int64_t)a[1].len != n) a.fail(true, "mask has %zu elements, values has %lld", a[1].len, (long long)n);
  if (a.ok() && among > 1) a.fail(true, "among must be 0 or 1, got %lld", (long long)among);
  a.need("out", a[5].len, count, 1, "count");
  if (!a.ok()) return nullptr;

  // Reused from call to call: an update allocates nothing once the buffers have grown.
  thread_local std::vector<float> keys;
  thread_local std::vector<int32_t> index;
  thread_local std::vector<Key> cand;
  thread_local std::vector<float> sample;
  if ((int64_t)keys.size() < n) {
    keys.resize(n);
    index.resize(n);
  }
  // Every entry is written at the next slot and the slot advances only when eligible: no
  // branch to mispredict on a random mask.
  const bool wantActive = among == 1;
  const float sign = largest ? -1.0f : 1.0f;
  int64_t eligible = 0;
  for (int64_t i = 0; i < n; i++) {
    const float v = values[i];
    keys[eligible] = sign * (v != v ? INFINITY : std::fabs(v));
    index[eligible] = (int32_t)i;
    eligible += (mask[i] != 0.0f) == wantActive;
  }
  if (count > eligible) {
    a.fail(true, "asked for %lld of %lld eligible entries", (long long)count, (long long)eligible);
    return nullptr;
  }
  if (count == 0) return lth::undefined_value(env);
  cand.clear();
  if (eligible >= 4 * kSample && count * 8 <= eligible) {
    sample.resize(kSample);
    const double stride = (double)eligible / (double)kSample;
    for (int64_t j = 0; j < kSample; j++) sample[j] = keys[(int64_t)(j * stride)];
    const int64_t q = std::min<int64_t>(kSample - 1, (int64_t)std::ceil(1.5 * (double)kSample * (double)count / (double)eligible) + 32);
    std::nth_element(sample.begin(), sample.begin() + q, sample.end());
    const float bound = sample[q];
    for (int64_t j = 0; j < eligible; j++)
      if (keys[j] <= bound) cand.emplace_back(keys[j], index[j]);
    if ((int64_t)cand.size() < count) cand.clear();
  }
  if (cand.empty())
    for (int64_t j = 0; j < eligible; j++) cand.emplace_back(keys[j], index[j]);
  // Pairs order by key, then index: the lowest index wins a tie.
  std::nth_element(cand.begin(), cand.begin() + (count - 1), cand.end());
  for (int64_t j = 0; j < count; j++) out[j] = cand[j].second;
  std::sort(out, out + count);
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_select(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"selectByMagnitude", SelectByMagnitude}};
  return define_exports(env, exports, kExports);
}
