// The addon's thread pool (pool.cc): the thread count, the threads a kernel may use, and
// running the parts of a job on the calling thread and the pool's workers.
#pragma once

#include <cstdint>

namespace lth {

// The threads a kernel called now on this thread may use: the thread count, 1 on a
// serial thread, and no more than the cores that held cores leave (see hold_core).
int thread_count();

// Runs fn(ctx, part) for part = 0..parts-1 on the calling thread and the pool (all on the
// caller when single-threaded or when the pool is busy), returning when all are done. With
// callerFirst, part 0 always runs on the calling thread, so what it makes stays in that
// core's cache from call to call. Parts are claimed dynamically: more parts than threads
// is fine. parts < 65536.
void run_parts(int parts, void (*fn)(void* ctx, int part), void* ctx, bool callerFirst = false);

// Runs fn(ctx, part, scratch) for part = 0..parts-1 on the calling thread and a pool of
// `threads` threads, each part with its thread's GEMM scratch (gScratchFloats floats; the
// caller's is callerScratch). False, having run nothing, when another JavaScript thread
// has the pool: the caller then runs the work alone.
bool run_parts_scratch(int threads, int parts, void (*fn)(void* ctx, int part, float* scratch), void* ctx,
                       float* callerScratch);

// The calling thread's GEMM scratch (gScratchFloats floats, 64-byte aligned); aborts when
// it cannot be allocated.
float* caller_scratch();

// The thread count (1..256); waits for a job running on the pool to finish.
void set_threads(int n);
int get_threads();

// From now on, kernels called on this thread run on it alone (never on the pool).
void set_serial_thread();

// While on, this thread holds a core: kernels on other threads use at most the cores
// left. Released when the thread exits.
void hold_core(bool on);

}  // namespace lth
