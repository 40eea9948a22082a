// The addon's thread pool: a few persistent workers that run the parts of a job with the
// calling thread (see pool.h), the thread count, and the bookkeeping of serial threads
// and held cores.
//
// Denormals: the workers run with MXCSR FTZ|DAZ for their whole life (the calling thread
// sets it per kernel call, see ftz.h).

#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_X86 1
#endif

#include "dispatch.h"
#include "ftz.h"

namespace {

#ifdef LTH_X86
void set_ftz_daz_forever() { _mm_setcsr(_mm_getcsr() | lth::kFtzDaz); }
#else
void set_ftz_daz_forever() {}
#endif

// A thread's GEMM scratch, grown on demand.
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
  // places a woken thread on its waker's core and is slow to separate them). Excluding
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
    float* buf = scratch.get(lth::gScratchFloats);
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

}  // namespace

namespace lth {

int thread_count() { return threads_here(); }

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

bool run_parts_scratch(int threads, int parts, void (*fn)(void* ctx, int part, float* scratch), void* ctx,
                       float* callerScratch) {
  std::unique_lock<std::mutex> lk;
  Pool* pool = acquire_pool(lk, threads);
  if (!pool) return false;
  pool->run(parts, fn, ctx, callerScratch);
  return true;
}

float* caller_scratch() {
  float* scratch = tScratch.get(gScratchFloats);
  if (!scratch) {
    // Out of memory for 1 MB of scratch: nothing sensible to do but abort loudly.
    std::fprintf(stderr, "lth_native: cannot allocate GEMM scratch\n");
    std::abort();
  }
  return scratch;
}

void set_threads(int n) {
  std::lock_guard<std::mutex> lk(gPoolMu);
  gThreads.store(n);
  if (gPool && gPool->threads() != n) {
    delete gPool;
    gPool = nullptr;
  }
}

int get_threads() { return gThreads.load(); }

void set_serial_thread() { tlSerial = true; }

void hold_core(bool on) { tlHold.set(on); }

}  // namespace lth
