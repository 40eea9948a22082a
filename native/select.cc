// selectByMagnitude: the mask update of dynamic sparse training (SET, RigL) picks, every
// ΔT steps, the k active weights of smallest magnitude to drop and (RigL) the k inactive
// entries of largest gradient magnitude to grow, on layers of 10^5-10^7 entries. In plain
// TypeScript the scans and the quickselect took 4-6 ms a LeNet update, as much as the
// hundred sparse steps between updates. Here a strided sample of the eligible keys bounds
// the threshold and one pass over the layer keeps the few entries within the bound, so
// nth_element runs on a few thousand of them and no per-entry arrays are written. On
// LeNet's fc1 (235,200 entries, 7.6% kept), growing 5,000 took 0.57-0.72 ms against
// 1.2-1.5 ms when the pass first gathered every eligible key (busy machine, 100 calls);
// testing 16 entries at a time with SSE in that pass, and 4 in the count of kept entries,
// growing 4,000 takes about 0.21 ms against 0.27 (CPU time, fastest of 10 x 50 calls).
// The pass is split across threads on big layers, and the threshold is selected among the
// candidates' keys alone: growing 5,000 of fc1's entries 0.29 -> 0.23 ms, dropping 5,000 of
// its 17,900 active weights 0.21 -> 0.12 ms (2 threads, fastest of 300 calls, busy machine).
//
// The result is exact and deterministic: the `count` smallest keys (|v|, or -|v| for the
// largest), ties broken by the lower index, NaN ranking as the largest magnitude; the
// indices are written in increasing order. The reference backend's implementation (a full
// sort) is the oracle.

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "bindings.h"
#include "napi_args.h"
#include "pool.h"
#include "sparse_pattern.h"

namespace {

using lth::ArgSpec;
using lth::Args;
namespace arg = lth::arg;

// Keys sampled to bound the threshold; the bound is used when count is at most half the
// eligible entries and there are at least four samples' worth. (At an eighth, RigL's drop
// of 2,700 of fc1's 17,900 active weights took the unbounded path: 0.12 ms against 0.03.)
constexpr int64_t kSample = 4096;

using Key = std::pair<float, int32_t>;

// The bounded pass is split across threads from this many entries (LeNet's fc1, 235,200,
// is; its 17,900 active weights are not), into at most kMaxRanges ranges.
constexpr int64_t kSplitPass = 65536;
constexpr int kMaxRanges = 8;

// The pass that keeps the eligible entries whose key is at or below `bound`, over `ranges`
// ranges of whole groups of 16 entries (the last takes the rest): range r's candidates, in
// increasing index order, go to out[r] (out[0] alone when there is one range).
struct BoundedPass {
  const float *values, *mask;
  int64_t n;
  int ranges;
  bool wantActive;
  float sign, bound;
  std::vector<Key>* out;
  int64_t took[kMaxRanges];
  int64_t begin(int r) const { return r == ranges ? n : n / 16 * r / ranges * 16; }
};

// Range r of the pass; returns its count of candidates.
int64_t bounded_pass(const BoundedPass& p, int r) {
  const float *values = p.values, *mask = p.mask;
  const float sign = p.sign, bound = p.bound;
  const int64_t end = p.begin(r + 1);
  int64_t i = p.begin(r), took = 0;
  Key* cand = p.out[r].data();
  auto keyAt = [&](int64_t at) {
    const float v = values[at];
    return sign * (v != v ? INFINITY : std::fabs(v));
  };
  // Few entries pass the bound: a branch on it is predicted right nearly always, and
  // whole groups of entries are tested at once where the vector unit allows.
#ifdef __SSE2__
  const __m128 absMask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)), zero = _mm_setzero_ps();
  const __m128 signs = _mm_set1_ps(sign), inf = _mm_set1_ps(sign * INFINITY), bounds = _mm_set1_ps(bound);
  for (; i + 16 <= end; i += 16) {
    int hit = 0;
    for (int j = 0; j < 16; j += 4) {
      const __m128 v = _mm_loadu_ps(values + i + j), m = _mm_loadu_ps(mask + i + j);
      // The key: sign·|v|, sign·inf for NaN (NaN != NaN).
      const __m128 nan = _mm_cmpunord_ps(v, v);
      const __m128 key = _mm_or_ps(_mm_and_ps(nan, inf), _mm_andnot_ps(nan, _mm_mul_ps(signs, _mm_and_ps(v, absMask))));
      const __m128 active = _mm_cmpneq_ps(m, zero);
      const __m128 eligible = p.wantActive ? active : _mm_andnot_ps(active, _mm_castsi128_ps(_mm_set1_epi32(-1)));
      hit |= _mm_movemask_ps(_mm_and_ps(eligible, _mm_cmple_ps(key, bounds))) << j;
    }
    for (; hit; hit &= hit - 1) {
      const int64_t at = i + __builtin_ctz(hit);
      cand[took++] = Key(keyAt(at), (int32_t)at);
    }
  }
#endif
  for (; i < end; i++) {
    const float key = keyAt(i);
    if (((mask[i] != 0.0f) == p.wantActive) & (key <= bound)) cand[took++] = Key(key, (int32_t)i);
  }
  return took;
}

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
  thread_local std::vector<Key> cand;
  thread_local std::vector<float> firsts;
  thread_local std::vector<float> sample;
  const bool wantActive = among == 1;
  const float sign = largest ? -1.0f : 1.0f;
  auto eligibleAt = [&](int64_t i) { return (mask[i] != 0.0f) == wantActive; };
  auto keyAt = [&](int64_t i) {
    const float v = values[i];
    return sign * (v != v ? INFINITY : std::fabs(v));
  };
  const int64_t kept = lth::count_nonzero(mask, n);
  const int64_t eligible = wantActive ? kept : n - kept;
  if (count > eligible) {
    a.fail(true, "asked for %lld of %lld eligible entries", (long long)count, (long long)eligible);
    return nullptr;
  }
  if (count == 0) return lth::undefined_value(env);
  // The candidates, in increasing index order: every eligible entry, or only those at or
  // below a bound taken from a sample of about kSample eligible keys at evenly spaced
  // positions, when that bound leaves at least `count` of them.
  if ((int64_t)cand.size() < n) cand.resize(n);
  int64_t took = 0;
  if (eligible >= 4 * kSample && count * 2 <= eligible) {
    sample.clear();
    const int64_t positions = std::min<int64_t>(n, (int64_t)((double)kSample * (double)n / (double)eligible));
    const double stride = (double)n / (double)positions;
    for (int64_t j = 0; j < positions; j++) {
      const int64_t i = (int64_t)(j * stride);
      if (eligibleAt(i)) sample.push_back(keyAt(i));
    }
    const int64_t m = (int64_t)sample.size();
    const int64_t q = std::min<int64_t>(m - 1, (int64_t)std::ceil(1.5 * (double)m * (double)count / (double)eligible) + 32);
    if (q >= 0) {
      std::nth_element(sample.begin(), sample.begin() + q, sample.end());
      const float bound = sample[q];
      // On big layers the pass is split into ranges (multiples of 16 entries), one per
      // thread, each collecting its own candidates; appended in range order they are the
      // same list as one pass's.
      const int threads = n >= kSplitPass ? std::min(lth::thread_count(), kMaxRanges) : 1;
      thread_local std::vector<Key> ranges[kMaxRanges];
      BoundedPass pass{values, mask, n, threads, wantActive, sign, bound, threads > 1 ? ranges : &cand, {}};
      for (int r = 0; r < threads && threads > 1; r++)
        if ((int64_t)ranges[r].size() < pass.begin(r + 1) - pass.begin(r)) ranges[r].resize(pass.begin(r + 1) - pass.begin(r));
      if (threads > 1) {
        lth::run_parts(threads, [](void* c, int r) {
          auto& p = *static_cast<BoundedPass*>(c);
          p.took[r] = bounded_pass(p, r);
        }, &pass);
        for (int r = 0; r < threads; r++) {
          std::copy(ranges[r].begin(), ranges[r].begin() + pass.took[r], cand.begin() + took);
          took += pass.took[r];
        }
      } else {
        took = bounded_pass(pass, 0);
      }
      if (took < count) took = 0;
    }
  }
  // Without a bound every entry is written at the next slot, which advances only when it is
  // eligible: no branch to mispredict on a random mask.
  if (took == 0)
    for (int64_t i = 0; i < n; i++) {
      cand[took] = Key(keyAt(i), (int32_t)i);
      took += eligibleAt(i);
    }
  // The count-th smallest key is the threshold: the candidates below it and the first of
  // those equal to it (the lowest indices win a tie), read in index order, are the answer
  // already sorted. Selecting among the keys alone (no NaN: NaN's key is ±inf) costs half
  // as much as among (key, index) pairs.
  firsts.resize((size_t)took);
  for (int64_t i = 0; i < took; i++) firsts[i] = cand[i].first;
  std::nth_element(firsts.begin(), firsts.begin() + (count - 1), firsts.end());
  const float threshold = firsts[count - 1];
  int64_t ties = count;
  for (int64_t i = 0; i < count; i++) ties -= firsts[i] < threshold;
  int64_t j = 0;
  for (int64_t i = 0; i < took; i++) {
    const float key = cand[i].first;
    if (key < threshold || (key == threshold && ties-- > 0)) out[j++] = cand[i].second;
  }
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_select(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"selectByMagnitude", SelectByMagnitude}};
  return define_exports(env, exports, kExports);
}
