// The sparse kernels of lth_native: each compiled three times (AVX-512F, AVX2+FMA,
// baseline) from sparse_impl.h with GCC target attributes and that ISA's vector width
// (LTH_SP_WIDTH floats: 16, 8 and 4), one table per path, and gS,
// the table of the path lth_native.cc has chosen; and the whole-pattern products split
// across the pool (see sparse_kernels.h).

#include "sparse_kernels.h"

#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_SP_X86 1
#endif

#include "pool.h"

// The 16-float vectors of the AVX-512 copy never cross a non-inlined call.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lth {
namespace {

#ifdef LTH_SP_X86
namespace avx512 {
#define LTH_SP_TARGET __attribute__((target("avx512f,avx2,fma")))
#define LTH_SP_AVX 1
#define LTH_SP_WIDTH 16
#include "sparse_impl.h"
#undef LTH_SP_WIDTH
#undef LTH_SP_AVX
#undef LTH_SP_TARGET
}  // namespace avx512
namespace avx2 {
#define LTH_SP_TARGET __attribute__((target("avx2,fma")))
#define LTH_SP_AVX 1
#define LTH_SP_WIDTH 8
#include "sparse_impl.h"
#undef LTH_SP_WIDTH
#undef LTH_SP_AVX
#undef LTH_SP_TARGET
}  // namespace avx2
#endif
namespace scalar {
#define LTH_SP_TARGET
#define LTH_SP_AVX 0
#define LTH_SP_WIDTH 4
#include "sparse_impl.h"
#undef LTH_SP_WIDTH
#undef LTH_SP_AVX
#undef LTH_SP_TARGET
}  // namespace scalar

// Multiply-adds from which a sparse product is split across the pool.
constexpr double kParallelMinWork = 300000.0;

// Runs fn(ctx, i0, i1) over the rows (or columns) of a compressed pattern with pointer
// array ptr, in parts of about equal nonzero counts on the pool when the product has at
// least kParallelMinWork multiply-adds, else on the calling thread.
void for_parts(const int32_t* ptr, int64_t count, int64_t ld, void (*fn)(const void*, int64_t, int64_t),
               const void* ctx) {
  const int threads = thread_count();
  const int64_t nnz = ptr[count];
  if (threads < 2 || (double)nnz * (double)ld < kParallelMinWork || count < 2) {
    fn(ctx, 0, count);
    return;
  }
  struct Job {
    const int32_t* ptr;
    int64_t count, nnz;
    int parts;
    void (*fn)(const void*, int64_t, int64_t);
    const void* ctx;
  } job{ptr, count, nnz, threads * 2, fn, ctx};
  // Part q: the rows whose first nonzero lies in [q·nnz/parts, (q+1)·nnz/parts).
  run_parts(job.parts, [](void* c, int part) {
    const Job& j = *static_cast<const Job*>(c);
    auto bound = [&](int q) -> int64_t {
      if (q == 0) return 0;
      if (q == j.parts) return j.count;
      const int64_t target = j.nnz * q / j.parts;
      int64_t lo = 0, hi = j.count;  // the first row r with ptr[r] >= target
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (j.ptr[mid] < target) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const int64_t i0 = bound(part), i1 = bound(part + 1);
    if (i0 < i1) j.fn(j.ctx, i0, i1);
  }, &job);
}

}  // namespace

const SparseKernels* gS = &scalar::kTable;

void select_sparse_kernels(const char* name) {
#ifdef LTH_SP_X86
  if (!std::strcmp(name, "avx512")) gS = &avx512::kTable;
  else if (!std::strcmp(name, "avx2")) gS = &avx2::kTable;
  else gS = &scalar::kTable;
#else
  (void)name;
#endif
}

}  // namespace lth

void lth::sparse_forward(const Pattern& p, const float* vals, const float* inT, float* outT, const float* bias,
                         int64_t n, int64_t ld, bool relu) {
  struct Ctx {
    const Pattern& p;
    const float *vals, *inT, *bias;
    float* outT;
    int64_t n, ld;
    bool relu;
  } c{p, vals, inT, bias, outT, n, ld, relu};
  for_parts(p.rowPtr, p.rows, ld, [](const void* q, int64_t r0, int64_t r1) {
    const Ctx& c = *static_cast<const Ctx*>(q);
    gS->forward(c.p, c.vals, c.inT, c.outT, c.bias, r0, r1, c.n, c.ld, c.relu);
  }, &c);
}

void lth::sparse_input_grad(const Pattern& p, const float* vals, const float* gyT, float* gxT, int64_t ld) {
  struct Ctx {
    const Pattern& p;
    const float *vals, *gyT;
    float* gxT;
    int64_t ld;
  } c{p, vals, gyT, gxT, ld};
  for_parts(p.colPtr, p.cols, ld, [](const void* q, int64_t i0, int64_t i1) {
    const Ctx& c = *static_cast<const Ctx*>(q);
    gS->inputGrad(c.p, c.vals, c.gyT, c.gxT, i0, i1, c.ld);
  }, &c);
}

void lth::sparse_weight_grad(const Pattern& p, const float* gyT, const float* xT, float* gvals, float* gbias,
                             int64_t ld) {
  struct Ctx {
    const Pattern& p;
    const float *gyT, *xT;
    float *gvals, *gbias;
    int64_t ld;
  } c{p, gyT, xT, gvals, gbias, ld};
  for_parts(p.rowPtr, p.rows, ld, [](const void* q, int64_t r0, int64_t r1) {
    const Ctx& c = *static_cast<const Ctx*>(q);
    gS->weightGrad(c.p, c.gyT, c.xT, c.gvals, c.gbias, r0, r1, c.ld);
  }, &c);
}
