// lth_native: the Node-API addon behind the `native` backend (see native/README.md).
//
// This unit is the module's init, the CPU dispatch, and the small exports that control
// the SIMD path and the threads: simdPath(), setSimd(name), setThreads(n), getThreads(),
// threadsHere(), serialThread(), holdCore(on). The kernels' bindings live in their own
// units (bindings.h lists them).
//
// Dispatch: the kernel tables of the paths the CPU supports (kernels_{avx512,avx2,scalar}.cc
// for GEMM and the elementwise kernels, sparse_kernels.cc for the sparse ones) are found
// once per process; the best one is in use until setSimd switches every table to
// another. The addon reads no environment variables: the JavaScript side passes its
// settings (src/backend/index.ts).

#include <node_api.h>

#include <atomic>
#include <csignal>

#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "bindings.h"
#include "dispatch.h"
#include "napi_args.h"
#include "pool.h"
#include "sparse_kernels.h"

namespace lth {
const Kernels* gK = nullptr;
size_t gScratchFloats = 0;
}  // namespace lth

namespace {

using lth::ArgSpec;
using lth::Args;
using lth::Kernels;
using lth::undefined_value;
namespace arg = lth::arg;

// The tables the CPU supports (nullptr for a path it lacks) and the best of them.
const Kernels* gAvx512 = nullptr;
const Kernels* gAvx2 = nullptr;
const Kernels* gScalar = nullptr;
const Kernels* gBest = nullptr;

void init_once() {
  gScalar = lth::get_kernels_scalar();
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) gAvx2 = lth::get_kernels_avx2();
  if (gAvx2 && __builtin_cpu_supports("avx512f")) gAvx512 = lth::get_kernels_avx512();
#endif
  gBest = gAvx512 ? gAvx512 : gAvx2 ? gAvx2 : gScalar;
  for (const Kernels* k : {gAvx512, gAvx2, gScalar})
    if (k && k->scratchFloats > lth::gScratchFloats) lth::gScratchFloats = k->scratchFloats;
  lth::gK = gBest;
  lth::select_sparse_kernels(gBest->name);
  // Every hardware thread by default (the JavaScript side sets its own count).
  const unsigned hw = std::thread::hardware_concurrency();
  lth::set_threads(hw < 1 ? 1 : hw > 256 ? 256 : (int)hw);
}

std::once_flag gInitFlag;

// simdPath() -> 'avx512' | 'avx2' | 'scalar': the path in use.
napi_value SimdPath(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, lth::gK->name, NAPI_AUTO_LENGTH, &s);
  return s;
}

// setSimd(name) -> the path now in use: switches every kernel table to the path `name`
// ('avx512' | 'avx2' | 'scalar'), or to the best the CPU has when it lacks that one. Call
// it between kernel calls (on any thread), never while a kernel runs.
constexpr ArgSpec kSetSimdArgs[] = {arg::string("name")};

napi_value SetSimd(napi_env env, napi_callback_info info) {
  Args<1> a(env, info, "setSimd", kSetSimdArgs);
  if (!a.ok()) return nullptr;
  char name[8] = {};
  size_t len = 0;
  napi_get_value_string_utf8(env, a[0].value, name, sizeof name, &len);
  auto is = [&](const char* path) { return len == std::strlen(path) && !std::memcmp(name, path, len); };
  const Kernels* k = is("scalar") ? gScalar : is("avx2") ? (gAvx2 ? gAvx2 : gScalar) : is("avx512") ? gBest : nullptr;
  if (!k) {
    size_t full = 0;
    napi_get_value_string_utf8(env, a[0].value, nullptr, 0, &full);
    std::string text(full, '\0');
    napi_get_value_string_utf8(env, a[0].value, text.data(), full + 1, &full);
    a.fail(true, "name must be 'avx512', 'avx2' or 'scalar', got '%s'", text.c_str());
    return nullptr;
  }
  // Written only when it changes, so a thread that sets the path it already has (each
  // worker thread's loader does) touches nothing another thread reads.
  if (lth::gK != k) {
    lth::gK = k;
    lth::select_sparse_kernels(k->name);
  }
  return SimdPath(env, info);
}

// setThreads(n): the pool's thread count, an integer from 1 to 256.
constexpr ArgSpec kSetThreadsArgs[] = {arg::number("n")};

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args<1> a(env, info, "setThreads", kSetThreadsArgs);
  if (!a.ok()) return nullptr;
  const double d = a[0].num;
  if (!(d >= 1 && d <= 256 && std::floor(d) == d)) {
    a.fail(true, "n must be an integer from 1 to 256, got %.17g", d);
    return nullptr;
  }
  lth::set_threads((int)d);
  return undefined_value(env);
}

// getThreads() -> the thread count.
napi_value GetThreads(napi_env env, napi_callback_info) { return lth::number_value(env, lth::get_threads()); }

// threadsHere() -> the threads a kernel called now on this thread would use.
napi_value ThreadsHere(napi_env env, napi_callback_info) { return lth::number_value(env, lth::thread_count()); }

// serialThread(): kernels called from this thread from now on run on it alone.
napi_value SerialThread(napi_env env, napi_callback_info) {
  lth::set_serial_thread();
  return undefined_value(env);
}

// holdCore(on): while on, this (serial) thread holds a core: other threads' kernels use at
// most the cores left. For a background evaluation thread, on only while it computes.
constexpr ArgSpec kHoldCoreArgs[] = {arg::flag("on")};

napi_value HoldCore(napi_env env, napi_callback_info info) {
  Args<1> a(env, info, "holdCore", kHoldCoreArgs);
  if (!a.ok()) return nullptr;
  lth::hold_core(a[0].flag);
  return undefined_value(env);
}

// ------------------------------------------------------------------ stop signals

// A training run is synchronous JavaScript: a signal handler registered with process.on()
// would run only after it. watchStopSignals() installs C handlers instead: the first
// SIGINT or SIGTERM is recorded (stopSignal() reads it at the run's next safe point); a
// second SIGINT or SIGTERM restores the default action and re-raises it, stopping the
// process at once.
std::atomic<int> gStopSignal{0};

void on_stop_signal(int signo) {
  if (gStopSignal.exchange(signo) != 0) {
    std::signal(signo, SIG_DFL);
    std::raise(signo);
  }
}

napi_value WatchStopSignals(napi_env env, napi_callback_info) {
#ifdef __unix__
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
#endif
  return undefined_value(env);
}

// stopSignal() -> the number of the stop signal received since watchStopSignals(), or 0.
napi_value StopSignal(napi_env env, napi_callback_info) { return lth::number_value(env, gStopSignal.load()); }

}  // namespace

NAPI_MODULE_INIT() {
  std::call_once(gInitFlag, init_once);
  static constexpr lth::Export kExports[] = {
      {"simdPath", SimdPath},       {"setSimd", SetSimd},         {"setThreads", SetThreads},
      {"getThreads", GetThreads},   {"threadsHere", ThreadsHere}, {"serialThread", SerialThread},
      {"holdCore", HoldCore},       {"watchStopSignals", WatchStopSignals}, {"stopSignal", StopSignal},
  };
  if (!lth::define_exports(env, exports, kExports)) return nullptr;
  if (!lth::register_gemm(env, exports) || !lth::register_elementwise(env, exports) ||
      !lth::register_conv(env, exports) || !lth::register_conv2d(env, exports) || !lth::register_winograd(env, exports) || !lth::register_norm(env, exports) || !lth::register_sparse_pattern(env, exports) ||
      !lth::register_sparse(env, exports) || !lth::register_sparse_mlp(env, exports) || !lth::register_sparse_conv(env, exports) ||
      !lth::register_dense_mlp(env, exports) ||
      !lth::register_select(env, exports) || !lth::register_seq(env, exports))
    return nullptr;
  return exports;
}
