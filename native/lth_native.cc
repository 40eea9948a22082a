// lth_native: the Node-API binding of lth's kernels (the `native` backend).
//
// Exports exactly the methods of the Backend interface (src/backend/backend.ts),
// same names and argument order, plus simdPath(), setThreads(n) and getThreads().
// Every argument is validated here (typed-array type, length against the sizes,
// integer dimensions) and a TypeError/RangeError names the function and the
// argument; the kernels themselves never see a buffer that is too small.
//
// Dispatch: the kernel table (kernels_{avx512,avx2,scalar}.cc) is chosen once per
// process from the CPU's features; LTH_SIMD=avx512|avx2|scalar forces a lower path.
//
// Threads: a small persistent pool (default min(2, hardware threads), LTH_THREADS or
// setThreads() override). Only matmul is split, by blocks of output rows or columns
// aligned to the micro-kernel's tile grid; every element of C is computed by the
// same instructions whatever the partition, so results do not depend on the thread
// count.
//
// Denormals: pool threads run with MXCSR FTZ|DAZ for their whole life; on the
// calling (JavaScript) thread FTZ|DAZ is set on entry to each kernel and the
// previous MXCSR restored on exit, so that JavaScript's own double arithmetic keeps
// IEEE denormals.

#include <node_api.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels.h"
#include "sparse.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_X86 1
#endif

#include "ftz.h"

namespace {

using lth::GemmArgs;
using lth::Kernels;

// ------------------------------------------------------------------ denormals

using lth::FtzScope;
#ifdef LTH_X86
void set_ftz_daz_forever() { _mm_setcsr(_mm_getcsr() | lth::kFtzDaz); }
#else
void set_ftz_daz_forever() {}
#endif

// ------------------------------------------------------------------ dispatch

const Kernels* gK = nullptr;
std::string gInitError;
int gDefaultThreads = 1;

void init_once() {
  const Kernels* scalar = lth::get_kernels_scalar();
  const Kernels* avx2 = nullptr;
  const Kernels* avx512 = nullptr;
#ifdef LTH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) avx2 = lth::get_kernels_avx2();
  if (avx2 && __builtin_cpu_supports("avx512f")) avx512 = lth::get_kernels_avx512();
#endif
  const Kernels* best = avx512 ? avx512 : avx2 ? avx2 : scalar;
  gK = best;
  if (const char* s = std::getenv("LTH_SIMD"); s && *s) {
    // A path the CPU lacks falls back to the best one it has.
    if (!std::strcmp(s, "scalar")) gK = scalar;
    else if (!std::strcmp(s, "avx2")) gK = avx2 ? avx2 : scalar;
    else if (!std::strcmp(s, "avx512")) gK = best;
    else gInitError = std::string("LTH_SIMD must be 'avx512', 'avx2' or 'scalar', got '") + s + "'";
  }
  unsigned hw = std::thread::hardware_concurrency();
  gDefaultThreads = hw >= 2 ? 2 : 1;
  if (const char* s = std::getenv("LTH_THREADS"); s && *s) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (*end || v < 1 || v > 256)
      gInitError = std::string("LTH_THREADS must be an integer from 1 to 256, got '") + s + "'";
    else
      gDefaultThreads = (int)v;
  }
}

// ------------------------------------------------------------------ scratch

struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t floats) {
    if (cap < floats) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64));
      cap = p ? floats : 0;
    }
    return p;
  }
};
thread_local Scratch tScratch;

// ------------------------------------------------------------------ thread pool

using TaskFn = void (*)(void* ctx, int part, float* scratch);

// Runs the `parts` chunks of a job on the calling thread and the pool's workers.
// Chunks are claimed dynamically, so a worker that is slow to wake (a busy machine)
// only means the caller does more of them; the result of a chunk does not depend on
// who runs it.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads < 1 ? 1 : threads) {
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this] { worker(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      job_.store(next_job_word(0), std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int threads() const { return threads_; }

  // Runs fn(ctx, part, scratch) for part = 0..parts-1 (parts < 65536) and returns
  // when all are done. With callerFirst, part 0 is the caller's own (so the data it
  // makes stays in the caller's cache from call to call) and the workers start at part 1.
  void run(int parts, TaskFn fn, void* ctx, float* callerScratch, bool callerFirst = false) {
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
#ifdef __linux__
    callerCpu_.store(sched_getcpu(), std::memory_order_relaxed);
#endif
    const uint64_t word = next_job_word(parts) | (callerFirst ? 1 : 0);
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_.store(word, std::memory_order_release);
    }
    cv_.notify_all();
    int mine = 0;
    if (callerFirst) fn(ctx, 0, callerScratch), mine++;
    for (int part; (part = claim(word)) >= 0; mine++) fn(ctx, part, callerScratch);
    if (mine < parts) wait_done(parts - mine);
  }

 private:
  // Waits until the workers have finished `target` parts of the current job: spins a
  // little (the parts usually end together), then sleeps. Sleeping lets this core go idle,
  // so the scheduler can move a preempted worker onto it; spinning or yielding kept it busy,
  // and a worker preempted by any other thread (V8's, the system's) held up the step for a
  // whole scheduler tick, 4 ms, every ~20 steps of a sparse LeNet step (~150 us).
  void wait_done(int target) {
    const auto t0 = std::chrono::steady_clock::now();
    unsigned spins = 0;
    for (int d; (d = done_.load(std::memory_order_seq_cst)) != target;) {
      if ((++spins & 63) != 0 ||
          std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(kWaitSpinMicros)) {
#ifdef LTH_X86
        _mm_pause();
#endif
        continue;
      }
#ifdef __linux__
      // A worker wakes us after adding to done_ if it sees waiting_ (both seq_cst: either
      // it sees the flag or we see its count, and FUTEX_WAIT rechecks done_ == d).
      waiting_.store(true, std::memory_order_seq_cst);
      if (done_.load(std::memory_order_seq_cst) == d)
        syscall(SYS_futex, reinterpret_cast<int*>(&done_), FUTEX_WAIT_PRIVATE, d, nullptr, nullptr, 0);
      waiting_.store(false, std::memory_order_relaxed);
#else
      std::this_thread::yield();
#endif
    }
  }

  // Moves this worker off the core the caller last ran on, if it is there. Two threads
  // that share a core while another idles take turns, each spinning for up to ~200 us
  // while the other waits (seen in scheduler traces for milliseconds at a time: Linux
  // places a woken thread on its waker's core and was slow to separate them). Excluding
  // the core from the affinity mask moves the thread at once; the mask is restored
  // straight after.
  void leave_caller_cpu() {
#ifdef __linux__
    const int caller = callerCpu_.load(std::memory_order_relaxed);
    if (caller < 0 || caller >= CPU_SETSIZE || sched_getcpu() != caller) return;
    cpu_set_t allowed, others;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    others = allowed;
    CPU_CLR(caller, &others);
    if (CPU_COUNT(&others) > 0 && sched_setaffinity(0, sizeof others, &others) == 0)
      sched_setaffinity(0, sizeof allowed, &allowed);
#endif
  }

  // job_ = job id << 32 | parts << 16 | next unclaimed part.
  uint64_t next_job_word(int parts) const {
    return ((job_.load(std::memory_order_relaxed) >> 32) + 1) << 32 | (uint64_t)parts << 16;
  }
  // Claims the next part of the job whose first word was `word`; -1 when that job
  // has no part left (or is over).
  int claim(uint64_t word) {
    uint64_t w = job_.load(std::memory_order_acquire);
    for (;;) {
      if ((w >> 32) != (word >> 32)) return -1;
      const int next = (int)(w & 0xFFFF), parts = (int)((w >> 16) & 0xFFFF);
      if (next >= parts) return -1;
      if (job_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return next;
    }
  }

  void worker() {
    set_ftz_daz_forever();
    Scratch scratch;
    float* buf = scratch.get(gK->scratchFloats);
    uint64_t seenJob = 0;  // job id at construction; run() may already have moved on
    for (;;) {
      // Spin a little (the GEMMs of a training step come back to back), then sleep.
      uint64_t w;
      auto t0 = std::chrono::steady_clock::now();
      unsigned spins = 0;
      while (((w = job_.load(std::memory_order_acquire)) >> 32) == seenJob) {
#ifdef LTH_X86
        _mm_pause();
#endif
        if ((++spins & 255) == 0) {
          leave_caller_cpu();
          if (std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(kSpinMicros)) {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return (job_.load(std::memory_order_acquire) >> 32) != seenJob; });
          }
        }
      }
      leave_caller_cpu();  // a sleeping worker is often woken onto its waker's core
      seenJob = w >> 32;
      if (stop_.load(std::memory_order_relaxed)) return;
      // fn_ and ctx_ are read only after a successful claim: the job cannot end, and
      // run() cannot publish the next one, before this part is done.
      int part, mine = 0;
      while ((part = claim(w)) >= 0) {
        if (!buf) {
          std::fprintf(stderr, "lth_native: cannot allocate GEMM scratch\n");
          std::abort();
        }
        fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), part, buf);
        mine++;
      }
      if (mine) {
        done_.fetch_add(mine, std::memory_order_seq_cst);
#ifdef __linux__
        if (waiting_.load(std::memory_order_seq_cst))
          syscall(SYS_futex, reinterpret_cast<int*>(&done_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#endif
      }
    }
  }

  static constexpr int kSpinMicros = 200;
  static constexpr int kWaitSpinMicros = 50;
  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> job_{0};
  std::atomic<int> done_{0};      // parts finished by workers in the current job
  std::atomic<bool> waiting_{false};  // the caller sleeps on done_ (a futex)
  std::atomic<int> callerCpu_{-1};    // the core run() was last called on
  std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<bool> stop_{false};  // set under mu_ before job_ changes
};

std::mutex gPoolMu;          // held while the pool runs a job or is rebuilt
Pool* gPool = nullptr;       // created on first parallel use
std::atomic<int> gThreads{1};
// Set on a thread that must not use the pool (a background evaluation thread, so that it
// never takes the pool from the training thread): its kernels run on it alone.
thread_local bool tlSerial = false;

// Cores that background threads hold while they compute (holdCore): kernels on other
// threads use no more threads than the cores left, so the pool's workers do not compete
// with them.
std::atomic<int> gHeldCores{0};
const int gCores = std::thread::hardware_concurrency() ? (int)std::thread::hardware_concurrency() : 1;
// Releases this thread's hold when it exits (a worker terminated mid-evaluation).
struct CoreHold {
  bool held = false;
  void set(bool on) {
    if (on != held) gHeldCores.fetch_add(on ? 1 : -1, std::memory_order_relaxed);
    held = on;
  }
  ~CoreHold() { set(false); }
};
thread_local CoreHold tlHold;

// The threads a kernel called on this thread may use.
int threads_here() {
  if (tlSerial) return 1;
  const int threads = gThreads.load(std::memory_order_relaxed);
  const int free = gCores - gHeldCores.load(std::memory_order_relaxed);
  return threads <= free ? threads : free < 1 ? 1 : free;
}

// ------------------------------------------------------------------ matmul driver

// Below this many multiply-adds (m*n*k) a GEMM runs on the calling thread alone.
constexpr double kParallelMinWork = 400000.0;
// Below this many elements an optimiser update runs on the calling thread alone.
constexpr int64_t kParallelMinElementwise = 65536;
// A parallel GEMM is cut into one chunk per thread (each chunk packs its own copy
// of the operand it does not split, so fewer is cheaper), or into kBigChunks chunks
// per thread from kBigWork multiply-adds on, where the extra packing is negligible
// and smaller chunks let the caller take over more of the work of a worker that a
// busy machine has not scheduled.
constexpr double kBigWork = 32e6;
constexpr int kBigChunks = 4;
// From this many rows a gatherRows call is split across the pool (in whole rows).
constexpr int64_t kParallelMinGatherRows = 32;
// Parts per thread of a parallel elementwise kernel.
constexpr int kElementwiseChunks = 4;

struct GemmJob {
  GemmArgs g;
  bool splitCols;
  int64_t tiles;  // tiles along the split dimension
  int parts;
};

void gemm_part(void* ctx, int part, float* scratch) {
  const GemmJob& j = *static_cast<const GemmJob*>(ctx);
  const int64_t t0 = j.tiles * part / j.parts, t1 = j.tiles * (part + 1) / j.parts;
  if (j.splitCols) {
    const int64_t c0 = t0 * gK->nr, c1 = t1 * gK->nr < j.g.n ? t1 * gK->nr : j.g.n;
    gK->gemm(j.g, 0, j.g.m, c0, c1, scratch);
  } else {
    const int64_t r0 = t0 * gK->mr, r1 = t1 * gK->mr < j.g.m ? t1 * gK->mr : j.g.m;
    gK->gemm(j.g, r0, r1, 0, j.g.n, scratch);
  }
}

// The pool, (re)built for the current thread count, or nullptr when it is in use
// by another JavaScript thread (then the caller runs alone: same results).
Pool* acquire_pool(std::unique_lock<std::mutex>& lk, int threads) {
  lk = std::unique_lock<std::mutex>(gPoolMu, std::try_to_lock);
  if (!lk.owns_lock()) return nullptr;
  if (!gPool || gPool->threads() != threads) {
    delete gPool;
    gPool = new Pool(threads);
  }
  return gPool;
}

float* caller_scratch() {
  float* scratch = tScratch.get(gK->scratchFloats);
  if (!scratch) {
    // Out of memory for 1 MB of scratch: nothing sensible to do but abort loudly.
    std::fprintf(stderr, "lth_native: cannot allocate GEMM scratch\n");
    std::abort();
  }
  return scratch;
}

void run_matmul(const GemmArgs& g) {
  float* scratch = caller_scratch();
  const int threads = threads_here();
  const int64_t rowTiles = (g.m + gK->mr - 1) / gK->mr, colTiles = (g.n + gK->nr - 1) / gK->nr;
  const double work = (double)g.m * (double)g.n * (double)g.k;
  if (threads > 1 && work >= kParallelMinWork && (rowTiles >= 2 || colTiles >= 2)) {
    std::unique_lock<std::mutex> lk;
    if (Pool* pool = acquire_pool(lk, threads)) {
      // Split the dimension whose split duplicates less packing: splitting columns
      // makes every thread pack all of op(A) (m*k), splitting rows all of op(B) (k*n).
      const bool splitCols = g.m <= g.n ? colTiles >= 2 : rowTiles < 2;
      GemmJob job{g, splitCols, splitCols ? colTiles : rowTiles, 0};
      const int64_t chunks = (int64_t)threads * (work >= kBigWork ? kBigChunks : 1);
      job.parts = (int)(job.tiles < chunks ? job.tiles : chunks);
      pool->run(job.parts, gemm_part, &job, scratch);
      return;
    }
  }
  gK->gemm(g, 0, g.m, 0, g.n, scratch);
}

// Runs f(begin, end) over [0, n) in parts of whole 64-byte lines, on the pool when n
// is at least minParallel.
template <class F>
void parallel_range(int64_t n, int64_t minParallel, const F& f) {
  const int threads = threads_here();
  if (threads > 1 && n >= minParallel) {
    std::unique_lock<std::mutex> lk;
    if (Pool* pool = acquire_pool(lk, threads)) {
      struct Job {
        const F* f;
        int64_t n;
        int parts;
      } job{&f, n, threads * kElementwiseChunks};
      pool->run(
          job.parts,
          [](void* ctx, int part, float*) {
            const Job& j = *static_cast<const Job*>(ctx);
            const int64_t b = (j.n * part / j.parts) & ~(int64_t)15;
            const int64_t e = part + 1 == j.parts ? j.n : (j.n * (part + 1) / j.parts) & ~(int64_t)15;
            if (b < e) (*j.f)(b, e);
          },
          &job, nullptr);
      return;
    }
  }
  f(0, n);
}

// ------------------------------------------------------------------ argument checks

#include "napi_args.h"

// ------------------------------------------------------------------ exports

napi_value Matmul(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmul", 9);
  size_t la, lb, lc;
  float* A = a.f32(0, "a", &la);
  float* B = a.f32(1, "b", &lb);
  float* C = a.f32(2, "c", &lc);
  int64_t m = a.dim(3, "m"), k = a.dim(4, "k"), n = a.dim(5, "n");
  bool transA = a.flag(6, "transA"), transB = a.flag(7, "transB"), acc = a.flag(8, "accumulate");
  a.need("a", la, m, k, "m*k");
  a.need("b", lb, k, n, "k*n");
  a.need("c", lc, m, n, "m*n");
  if (!a.ok()) return nullptr;
  if (overlaps(C, (size_t)(m * n) * 4, A, (size_t)(m * k) * 4)) {
    a.fail(true, "c must not share memory with a");
    return nullptr;
  }
  if (overlaps(C, (size_t)(m * n) * 4, B, (size_t)(k * n) * 4)) {
    a.fail(true, "c must not share memory with b");
    return nullptr;
  }
  if (m == 0 || n == 0) return undefined_value(env);
  FtzScope ftz;
  run_matmul(GemmArgs{A, B, C, m, k, n, transA, transB, acc});
  return undefined_value(env);
}

napi_value BiasAct(napi_env env, napi_callback_info info) {
  Args a(env, info, "biasAct", 6);
  size_t lx, lb, lo;
  float* x = a.f32(0, "x", &lx);
  float* bias = a.f32(1, "bias", &lb);
  float* out = a.f32(2, "out", &lo);
  int64_t rows = a.dim(3, "rows"), cols = a.dim(4, "cols");
  bool relu = a.flag(5, "relu");
  a.need("x", lx, rows, cols, "rows*cols");
  a.need("bias", lb, cols, 1, "cols");
  a.need("out", lo, rows, cols, "rows*cols");
  if (!a.ok()) return nullptr;
  if (rows && cols) {
    FtzScope ftz;
    gK->biasAct(x, bias, out, rows, cols, relu);
  }
  return undefined_value(env);
}

napi_value ReluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "reluBackward", 4);
  size_t lg, ly, li;
  float* go = a.f32(0, "gradOut", &lg);
  float* y = a.f32(1, "y", &ly);
  float* gi = a.f32(2, "gradIn", &li);
  int64_t n = a.dim(3, "n");
  a.need("gradOut", lg, n, 1, "n");
  a.need("y", ly, n, 1, "n");
  a.need("gradIn", li, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    FtzScope ftz;
    gK->reluBackward(go, y, gi, n);
  }
  return undefined_value(env);
}

napi_value SumRows(napi_env env, napi_callback_info info) {
  Args a(env, info, "sumRows", 5);
  size_t lx, lo;
  float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  int64_t rows = a.dim(2, "rows"), cols = a.dim(3, "cols");
  bool acc = a.flag(4, "accumulate");
  a.need("x", lx, rows, cols, "rows*cols");
  a.need("out", lo, cols, 1, "cols");
  if (!a.ok()) return nullptr;
  if (cols) {
    FtzScope ftz;
    gK->sumRows(x, out, rows, cols, acc);
  }
  return undefined_value(env);
}

napi_value SoftmaxXent(napi_env env, napi_callback_info info) {
  Args a(env, info, "softmaxXent", 6);
  size_t ll, llab, lg;
  bool hasGrad = false;
  float* logits = a.f32(0, "logits", &ll);
  int32_t* labels = a.i32(1, "labels", &llab);
  int64_t rows = a.dim(2, "rows"), cols = a.dim(3, "cols");
  float* grad = a.f32OrNull(4, "grad", &lg, &hasGrad);
  double scale = a.number(5, "gradScale");
  a.need("logits", ll, rows, cols, "rows*cols");
  a.need("labels", llab, rows, 1, "rows");
  if (hasGrad) a.need("grad", lg, rows, cols, "rows*cols");
  if (!a.ok()) return nullptr;
  for (int64_t i = 0; i < rows; i++) {
    if (labels[i] < 0 || labels[i] >= cols) {
      a.fail(true, "labels[%lld] = %d is outside [0, %lld)", (long long)i, labels[i], (long long)cols);
      return nullptr;
    }
  }
  // Double precision sums, in the reference's order.
  double total = 0;
  std::vector<double> ebuf;
  double stackBuf[256];
  double* e = stackBuf;
  if (cols > 256) {
    ebuf.resize((size_t)cols);
    e = ebuf.data();
  }
  for (int64_t i = 0; i < rows; i++) {
    const float* x = logits + i * cols;
    double mx = -INFINITY;
    for (int64_t j = 0; j < cols; j++) {
      const double v = x[j];
      if (v > mx || v != v) mx = v;  // Math.max: NaN wins
      if (mx != mx) break;
    }
    double sum = 0;
    // exp in float (the logits are float; its error, < 1 ulp, is below the loss's tolerance)
    // is several times faster than in double; the sum and the log stay in double.
    const float mxf = (float)mx;
    for (int64_t j = 0; j < cols; j++) sum += (e[j] = (double)std::exp(x[j] - mxf));
    const int32_t label = labels[i];
    total += std::log(sum) - ((double)x[label] - mx);
    if (hasGrad) {
      float* gr = grad + i * cols;
      for (int64_t j = 0; j < cols; j++) gr[j] = (float)((e[j] / sum - (j == label ? 1.0 : 0.0)) * scale);
    }
  }
  return number_value(env, total);
}

napi_value CountCorrect(napi_env env, napi_callback_info info) {
  Args a(env, info, "countCorrect", 4);
  size_t ll, llab;
  float* logits = a.f32(0, "logits", &ll);
  int32_t* labels = a.i32(1, "labels", &llab);
  int64_t rows = a.dim(2, "rows"), cols = a.dim(3, "cols");
  a.need("logits", ll, rows, cols, "rows*cols");
  a.need("labels", llab, rows, 1, "rows");
  if (!a.ok()) return nullptr;
  int64_t correct = 0;
  for (int64_t i = 0; i < rows; i++) {
    const float* x = logits + i * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < cols; j++)
      if (x[j] > x[best]) best = j;
    if (best == labels[i]) correct++;
  }
  return number_value(env, (double)correct);
}

napi_value Adam(napi_env env, napi_callback_info info) {
  Args a(env, info, "adam", 11);
  size_t lp, lg, lm, lv, lmask;
  bool hasMask = false;
  float* p = a.f32(0, "param", &lp);
  float* g = a.f32(1, "grad", &lg);
  float* m = a.f32(2, "m", &lm);
  float* v = a.f32(3, "v", &lv);
  float* mask = a.f32OrNull(4, "mask", &lmask, &hasMask);
  int64_t n = a.dim(5, "n");
  double lr = a.number(6, "lr"), beta1 = a.number(7, "beta1"), beta2 = a.number(8, "beta2");
  double eps = a.number(9, "eps"), step = a.number(10, "step");
  a.need("param", lp, n, 1, "n");
  a.need("grad", lg, n, 1, "n");
  a.need("m", lm, n, 1, "n");
  a.need("v", lv, n, 1, "n");
  if (hasMask) a.need("mask", lmask, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    const lth::UpdateRule rule{true, lr, beta1, beta2, eps, step, 0, 0};
    const float* mk = hasMask ? mask : nullptr;
    FtzScope ftz;
    parallel_range(n, kParallelMinElementwise, [&](int64_t b, int64_t e) {
      lth::update_params(rule, p + b, g + b, m + b, v + b, mk ? mk + b : nullptr, e - b);
    });
  }
  return undefined_value(env);
}

napi_value Sgd(napi_env env, napi_callback_info info) {
  Args a(env, info, "sgd", 8);
  size_t lp, lg, lb, lmask;
  bool hasMask = false;
  float* p = a.f32(0, "param", &lp);
  float* g = a.f32(1, "grad", &lg);
  float* buf = a.f32(2, "buf", &lb);
  float* mask = a.f32OrNull(3, "mask", &lmask, &hasMask);
  int64_t n = a.dim(4, "n");
  double lr = a.number(5, "lr"), momentum = a.number(6, "momentum"), wd = a.number(7, "weightDecay");
  a.need("param", lp, n, 1, "n");
  a.need("grad", lg, n, 1, "n");
  a.need("buf", lb, n, 1, "n");
  if (hasMask) a.need("mask", lmask, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    const lth::UpdateRule rule{false, lr, 0, 0, 0, 0, momentum, wd};
    const float* mk = hasMask ? mask : nullptr;
    FtzScope ftz;
    parallel_range(n, kParallelMinElementwise, [&](int64_t b, int64_t e) {
      lth::update_params(rule, p + b, g + b, buf + b, nullptr, mk ? mk + b : nullptr, e - b);
    });
  }
  return undefined_value(env);
}

napi_value ApplyMask(napi_env env, napi_callback_info info) {
  Args a(env, info, "applyMask", 3);
  size_t lx, lm;
  float* x = a.f32(0, "x", &lx);
  float* mask = a.f32(1, "mask", &lm);
  int64_t n = a.dim(2, "n");
  a.need("x", lx, n, 1, "n");
  a.need("mask", lm, n, 1, "n");
  if (!a.ok()) return nullptr;
  if (n) {
    FtzScope ftz;
    gK->applyMask(x, mask, n);
  }
  return undefined_value(env);
}

// Minibatch gather: the rows of a training set named by an epoch's permutation are
// scattered over a large array, so each copy waits on memory; two threads keep twice as
// many rows in flight.
napi_value GatherRows(napi_env env, napi_callback_info info) {
  Args a(env, info, "gatherRows", 6);
  size_t ls, li, ld;
  const float* src = a.f32(0, "src", &ls);
  int64_t rowSize = a.dim(1, "rowSize", 1);
  const int32_t* idx = a.i32(2, "indices", &li);
  int64_t from = a.dim(3, "from"), count = a.dim(4, "count");
  float* dst = a.f32(5, "dst", &ld);
  a.need("indices", li, from + count, 1, "from + count");
  a.need("dst", ld, count, rowSize, "count*rowSize");
  if (!a.ok()) return nullptr;
  const int64_t rows = (int64_t)ls / rowSize;
  for (int64_t b = 0; b < count; b++)
    if (idx[from + b] < 0 || idx[from + b] >= rows) {
      a.fail(true, "indices[%lld] = %d is not a row of src (%lld rows)", (long long)(from + b), idx[from + b],
             (long long)rows);
      return nullptr;
    }
  const size_t bytes = (size_t)rowSize * sizeof(float);
  parallel_range(count, kParallelMinGatherRows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) std::memcpy(dst + r * rowSize, src + (int64_t)idx[from + r] * rowSize, bytes);
  });
  return undefined_value(env);
}

// adviseHugePages(array) -> boolean: asks the kernel to back the 2 MiB-aligned interior of
// a Float32Array with 2 MiB pages (madvise MADV_HUGEPAGE). Pages not yet touched get
// them when first written, so call it on a fresh array before filling it. False where
// the system has no such pages or refuses.
napi_value AdviseHugePages(napi_env env, napi_callback_info info) {
  Args a(env, info, "adviseHugePages", 1);
  size_t len = 0;
  void* data = a.array(0, "array", napi_float32_array, &len);
  if (!a.ok()) return nullptr;
  bool ok = false;
#ifdef MADV_HUGEPAGE
  const uintptr_t huge = (uintptr_t)2 << 20, p0 = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (p0 + huge - 1) & ~(huge - 1), hi = (p0 + len * 4) & ~(huge - 1);
  if (data && hi > lo) ok = madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0;
#endif
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

napi_value SimdPath(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, gK->name, NAPI_AUTO_LENGTH, &s);
  return s;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, "setThreads", 1);
  double d = a.number(0, "n");
  if (!a.ok()) return nullptr;
  if (!(d >= 1 && d <= 256 && std::floor(d) == d)) {
    a.fail(true, "n must be an integer from 1 to 256, got %.17g", d);
    return nullptr;
  }
  std::lock_guard<std::mutex> lk(gPoolMu);
  gThreads.store((int)d);
  if (gPool && gPool->threads() != (int)d) {
    delete gPool;
    gPool = nullptr;
  }
  return undefined_value(env);
}

napi_value GetThreads(napi_env env, napi_callback_info) {
  return number_value(env, gThreads.load());
}

// threadsHere(): the threads a kernel called now on this thread would use.
napi_value ThreadsHere(napi_env env, napi_callback_info) {
  return number_value(env, threads_here());
}

// serialThread(): kernels called from this thread from now on run on it alone.
napi_value SerialThread(napi_env env, napi_callback_info) {
  tlSerial = true;
  return undefined_value(env);
}

// holdCore(on): while on, this (serial) thread holds a core: other threads' kernels use at
// most the cores left. For a background evaluation thread, on only while it computes.
napi_value HoldCore(napi_env env, napi_callback_info info) {
  Args a(env, info, "holdCore", 1);
  const bool on = a.flag(0, "on");
  if (!a.ok()) return nullptr;
  tlHold.set(on);
  return undefined_value(env);
}

std::once_flag gInitFlag;

}  // namespace

// ------------------------------------------------------------------ pool access for conv.cc

namespace lth {

int thread_count() { return threads_here(); }

void update_params(const UpdateRule& r, float* p, float* g, float* s0, float* s1, const float* mask, int64_t n) {
  if (n <= 0) return;
  if (r.adam) {
    const double stepSize = r.lr / (1 - std::pow(r.beta1, r.step));
    const double invBc2 = 1 / std::sqrt(1 - std::pow(r.beta2, r.step));
    gK->adam(p, g, s0, s1, mask, n, (float)r.beta1, (float)r.beta2, (float)(1 - r.beta1), (float)(1 - r.beta2),
             (float)stepSize, (float)invBc2, (float)r.eps);
  } else {
    gK->sgd(p, g, s0, mask, n, (float)r.lr, (float)r.momentum, (float)r.weightDecay);
  }
}

// Runs fn(ctx, part) for part = 0..parts-1 on the calling thread and the pool (all on
// the caller when single-threaded or when the pool is busy), returning when all are done;
// with callerFirst, part 0 always runs on the calling thread.
void run_parts(int parts, void (*fn)(void* ctx, int part), void* ctx, bool callerFirst) {
  const int threads = threads_here();
  if (threads > 1 && parts > 1) {
    std::unique_lock<std::mutex> lk;
    if (Pool* pool = acquire_pool(lk, threads)) {
      struct Wrap {
        void (*fn)(void*, int);
        void* ctx;
      } w{fn, ctx};
      pool->run(parts, [](void* c, int part, float*) { static_cast<Wrap*>(c)->fn(static_cast<Wrap*>(c)->ctx, part); },
                &w, nullptr, callerFirst);
      return;
    }
  }
  for (int p = 0; p < parts; p++) fn(ctx, p);
}

// conv.cc: adds im2col, col2im, channelBiasAct, sumChannels, maxPool2d, maxPool2dBackward.
bool register_conv(napi_env env, napi_value exports);

}  // namespace lth

NAPI_MODULE_INIT() {
  std::call_once(gInitFlag, [] {
    init_once();
    gThreads.store(gDefaultThreads);
  });
  if (!gInitError.empty()) {
    napi_throw_error(env, nullptr, ("lth_native: " + gInitError).c_str());
    return nullptr;
  }
  const napi_property_descriptor props[] = {
      {"matmul", nullptr, Matmul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"biasAct", nullptr, BiasAct, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"reluBackward", nullptr, ReluBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumRows", nullptr, SumRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"softmaxXent", nullptr, SoftmaxXent, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"countCorrect", nullptr, CountCorrect, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gatherRows", nullptr, GatherRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sgd", nullptr, Sgd, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"applyMask", nullptr, ApplyMask, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adviseHugePages", nullptr, AdviseHugePages, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"simdPath", nullptr, SimdPath, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"threadsHere", nullptr, ThreadsHere, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"holdCore", nullptr, HoldCore, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"serialThread", nullptr, SerialThread, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getThreads", nullptr, GetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return nullptr;
  if (!lth::register_conv(env, exports)) return nullptr;
  if (!lth::register_sparse(env, exports, gK->name)) return nullptr;
  return exports;
}
