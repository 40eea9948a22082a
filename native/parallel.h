// Splitting a memory-bound kernel over the addon's thread pool by whole units (rows,
// channels, planes): every output element is computed by one part, in a fixed order, so
// results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "pool.h"

namespace lth {

// Below this many elements touched a kernel runs on the calling thread alone.
constexpr int64_t kParallelMinUnits = 1 << 15;

// Runs f(b, e) over [0, units) in contiguous parts (split on the pool when the call
// touches at least kParallelMinUnits elements and there are at least 2 units).
template <class F>
void parallel_units(int64_t units, int64_t elements, const F& f) {
  const int threads = thread_count();
  if (threads <= 1 || units < 2 || elements < kParallelMinUnits) {
    f((int64_t)0, units);
    return;
  }
  struct Job {
    const F* f;
    int64_t units;
    int parts;
  } job{&f, units, (int)(units < 2 * threads ? units : 2 * threads)};
  run_parts(
      job.parts,
      [](void* ctx, int part) {
        const Job& j = *static_cast<const Job*>(ctx);
        const int64_t b = j.units * part / j.parts, e = j.units * (part + 1) / j.parts;
        if (b < e) (*j.f)(b, e);
      },
      &job);
}

}  // namespace lth
