// The thread pool's entry points for the kernel units (conv.cc, sparse.cc), defined in
// lth_native.cc.
#pragma once

#include <cstdint>

namespace lth {

// The threads a kernel called now on this thread may use.
int thread_count();

// Runs fn(ctx, part) for part = 0..parts-1 on the calling thread and the pool (all on the
// caller when single-threaded or when the pool is busy), returning when all are done. With
// callerFirst, part 0 always runs on the calling thread, so what it makes stays in that
// core's cache from call to call.
void run_parts(int parts, void (*fn)(void* ctx, int part), void* ctx, bool callerFirst = false);

}  // namespace lth
