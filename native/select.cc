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
// The eligible entries are no longer counted first (the sample gives their share), and the
// threshold comes from a histogram of the candidates' key bits, nth_element running on one
// bin's entries: growing 5,000 of fc1's entries on one thread 0.23 -> 0.07 ms.
//
// The result is exact and deterministic: the `count` smallest keys (|v|, or -|v| for the
// largest), ties broken by the lower index, NaN ranking as the largest magnitude; the
// indices are written in increasing order. The reference backend's implementation (a full
// sort) is the oracle.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// A key's code: unsigned, in the keys' order. A call's keys are all |v| (>= 0) or all -|v|
// (<= 0), with NaN's as inf's; their float bits are in their order, or in the reverse one.
inline uint32_t key_code(float key) {
  uint32_t bits;
  const float m = std::fabs(key);
  std::memcpy(&bits, &m, 4);
  return key > 0.0f || (key == 0.0f && !std::signbit(key)) ? bits : 0x7f800000u - bits;
}

// The code of value v's key: |v| (NaN: inf), reversed when the largest come first.
inline uint32_t value_code(float v, bool largest) {
  uint32_t bits;
  const float m = v != v ? INFINITY : std::fabs(v);
  std::memcpy(&bits, &m, 4);
  return largest ? 0x7f800000u - bits : bits;
}

// The count-th smallest of codes[0 .. n) (1 <= count <= n), and how many entries equal to
// it the count smallest take (`ties`; the others are below it). A histogram of the top 12
// bits (codes are below 2^31) finds the bin that holds it, and nth_element runs on that
// bin's entries alone: on RigL's candidates it costs about a tenth of nth_element on all.
struct Threshold {
  uint32_t code;
  int64_t ties;
};
Threshold select_threshold(const uint32_t* codes, int64_t n, int64_t count) {
  constexpr int kShift = 19;
  thread_local std::vector<int32_t> histV;
  thread_local std::vector<uint32_t> binV;
  histV.assign(size_t{1} << (31 - kShift), 0);
  int32_t* hist = histV.data();
  for (int64_t i = 0; i < n; i++) hist[codes[i] >> kShift]++;
  int64_t below = 0;
  uint32_t b = 0;
  while (below + hist[b] < count) below += hist[b++];
  if (binV.size() < (size_t)hist[b]) binV.resize((size_t)hist[b]);
  uint32_t* bin = binV.data();
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++)
    if ((codes[i] >> kShift) == b) bin[m++] = codes[i];
  const int64_t need = count - below;
  std::nth_element(bin, bin + (need - 1), bin + m);
  const uint32_t code = bin[need - 1];
  int64_t less = below;
  for (int64_t i = 0; i < need - 1; i++) less += bin[i] < code;
  return {code, count - less};
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
  thread_local std::vector<uint32_t> codesV;
  thread_local std::vector<float> sampleV;
  const bool wantActive = among == 1;
  const float sign = largest ? -1.0f : 1.0f;
  auto eligibleAt = [&](int64_t i) { return (mask[i] != 0.0f) == wantActive; };
  auto keyAt = [&](int64_t i) {
    const float v = values[i];
    return sign * (v != v ? INFINITY : std::fabs(v));
  };
  if (count == 0) return lth::undefined_value(env);
  // The candidates, in increasing index order: every eligible entry, or only those at or
  // below a bound taken from a sample of about kSample eligible keys at evenly spaced
  // positions, when that bound leaves at least `count` of them. The eligible entries are
  // not counted first (a pass over the whole mask): their share comes from the sample.
  if ((int64_t)cand.size() < n) cand.resize(n);
  int64_t took = 0;
  int64_t probed = 0;
  if (n >= 4 * kSample)
    for (int64_t j = 0; j < kSample; j++) probed += eligibleAt((int64_t)((double)j * (double)n / (double)kSample));
  const double eligible = (double)n * (double)probed / (double)kSample;
  if (probed > 0 && eligible >= 4 * kSample && (double)count * 2 <= eligible) {
    const int64_t positions = std::min<int64_t>(n, (int64_t)((double)kSample * (double)n / eligible));
    const double stride = (double)n / (double)positions;
    if (sampleV.size() < (size_t)positions) sampleV.resize((size_t)positions);
    float* sample = sampleV.data();
    int64_t m = 0;
    for (int64_t j = 0; j < positions; j++) {
      const int64_t i = (int64_t)(j * stride);
      if (eligibleAt(i)) sample[m++] = keyAt(i);
    }
    const int64_t q = std::min<int64_t>(m - 1, (int64_t)std::ceil(1.5 * (double)m * (double)count / eligible) + 32);
    if (q >= 0) {
      std::nth_element(sample, sample + q, sample + m);
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
  // eligible: no branch to mispredict on a random mask. It counts the eligible entries,
  // which the bounded pass leaves uncounted when it finds enough of them.
  if (took == 0) {
    Key* all = cand.data();
    for (int64_t i = 0; i < n; i++) {
      all[took] = Key(keyAt(i), (int32_t)i);
      took += eligibleAt(i);
    }
    if (count > took) {
      a.fail(true, "asked for %lld of %lld eligible entries", (long long)count, (long long)took);
      return nullptr;
    }
  }
  // The count-th smallest key is the threshold: the candidates below it and the first of
  // those equal to it (the lowest indices win a tie), read in index order, are the answer
  // already sorted.
  if (codesV.size() < (size_t)took) codesV.resize((size_t)took);
  uint32_t* codes = codesV.data();
  const Key* keys = cand.data();
  for (int64_t i = 0; i < took; i++) codes[i] = key_code(keys[i].first);
  const Threshold t = select_threshold(codes, took, count);
  int64_t ties = t.ties, j = 0;
  for (int64_t i = 0; i < took; i++) {
    const uint32_t c = codes[i];
    if (c < t.code || (c == t.code && ties-- > 0)) out[j++] = keys[i].second;
  }
  return lth::undefined_value(env);
}

// selectByMagnitudeAt(values, at, count, largest, out): the at[i] of the `count` entries i
// of smallest |values[i]| (largest, with `largest`), ties to the lower at[i], NaN the
// largest magnitude, into out in increasing order; at holds distinct indices >= 0 (a
// repeat among the chosen entries is reported, not one among the others). RigL's
// and SET's drop among a sparse layer's packed weights, whose flat indices (at) are in
// packed order, not increasing: the chosen ones are marked in a bitmap of the flat indices
// and read back in order. On LeNet's fc1 at 10% ERK (17,900 weights) this replaces a
// gather of the weights into row-major order through a dense index array and a
// selectByMagnitude over them.
constexpr ArgSpec kSelectAtArgs[] = {arg::f32("values"), arg::i32("at"), arg::dim("count"), arg::flag("largest"), arg::i32("out")};

napi_value SelectByMagnitudeAt(napi_env env, napi_callback_info info) {
  Args<5> a(env, info, "selectByMagnitudeAt", kSelectAtArgs);
  if (!a.ok()) return nullptr;
  const float* values = a[0].f32();
  const int32_t* at = a[1].i32();
  const int64_t n = (int64_t)a[0].len, count = a[2].dim();
  const bool largest = a[3].flag;
  int32_t* out = a[4].i32();
  if ((int64_t)a[1].len != n) a.fail(true, "at has %zu elements, values has %lld", a[1].len, (long long)n);
  if (a.ok() && count > n) a.fail(true, "asked for %lld of %lld entries", (long long)count, (long long)n);
  a.need("out", a[4].len, count, 1, "count");
  if (!a.ok()) return nullptr;
  // Scratch reused from call to call, reached through local pointers: a thread_local
  // read inside a loop costs a __tls_get_addr call per iteration in a shared library.
  thread_local std::vector<uint32_t> codesV;
  thread_local std::vector<uint64_t> chosenV;
  thread_local std::vector<int32_t> tiedV;
  int32_t top = -1;
  for (int64_t i = 0; i < n; i++) top = std::max(top, at[i]);
  for (int64_t i = 0; i < n && a.ok(); i++)
    if (at[i] < 0) a.fail(true, "at[%lld] = %d is negative", (long long)i, at[i]);
  if (!a.ok()) return nullptr;
  const size_t words = (size_t)top / 64 + 1;
  if (chosenV.size() < words) chosenV.resize(words);
  if (codesV.size() < (size_t)n) codesV.resize((size_t)n);
  uint64_t* chosen = chosenV.data();
  uint32_t* codes = codesV.data();
  std::fill(chosen, chosen + words, 0);
  for (int64_t i = 0; i < n; i++) codes[i] = value_code(values[i], largest);
  if (count == 0) return lth::undefined_value(env);
  const Threshold t = select_threshold(codes, n, count);
  tiedV.clear();
  for (int64_t i = 0; i < n; i++) {
    if (codes[i] < t.code) chosen[at[i] / 64] |= uint64_t{1} << (at[i] % 64);
    else if (codes[i] == t.code) tiedV.push_back(at[i]);
  }
  // The ties at the threshold go to the lowest indices.
  if ((int64_t)tiedV.size() > t.ties) std::nth_element(tiedV.begin(), tiedV.begin() + (t.ties - 1), tiedV.end());
  for (int64_t i = 0; i < t.ties; i++) chosen[tiedV[i] / 64] |= uint64_t{1} << (tiedV[i] % 64);
  // At most count entries are marked; a repeated index among them, once: fewer than count.
  int64_t j = 0;
  for (size_t w = 0; w < words; w++)
    for (uint64_t bits = chosen[w]; bits; bits &= bits - 1) out[j++] = (int32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
  if (j != count) a.fail(true, "at repeats an index among the %lld entries chosen", (long long)count);
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_select(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"selectByMagnitude", SelectByMagnitude}, {"selectByMagnitudeAt", SelectByMagnitudeAt}};
  return define_exports(env, exports, kExports);
}
