// The GEMM driver and the matmul binding: C (+)= op(A)·op(B) on the kernel table of the
// path in use (gK), split across the pool by whole tiles of the micro-kernel.
//
// Threads split C into chunks of whole tiles (column panels when m <= n, else row
// panels) that the calling thread and the pool claim dynamically; every element of C is
// computed by the same instructions however the chunks fall, so results do not depend on
// the thread count.

#include "gemm.h"

#include <cstdint>

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "napi_args.h"
#include "pool.h"

namespace {

using lth::ArgSpec;
using lth::GemmArgs;
using lth::gK;
using lth::kGemmParallelMinWork;
namespace arg = lth::arg;

// A parallel GEMM is cut into one chunk per thread (each chunk packs its own copy
// of the operand it does not split, so fewer is cheaper), or into kBigChunks chunks
// per thread from kBigWork multiply-adds on, where smaller chunks let the caller take
// over more of the work of a worker that a busy machine has not scheduled, as long as
// each chunk keeps kMinChunkTiles tiles: with fewer, the copy it packs costs too much
// next to its products (a 60-row fully connected layer's 8 column panels as 8 chunks
// packed its 60 x 16384 input 8 times, and 2 threads ran it 1.6 times as fast as one).
constexpr double kBigWork = 32e6;
constexpr int kBigChunks = 4;
constexpr int64_t kMinChunkTiles = 4;

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

// Packs panels [part, part + 1) of `parts` equal shares of op(A)'s row panels
// (GemmArgs::aPacked) or, with `b`, of op(B)'s column panels (GemmArgs::bPanel).
struct PackJob {
  const GemmArgs* g;
  float* dst;
  int64_t panels;
  int parts;
  bool b;
};

void pack_part(void* ctx, int part, float*) {
  const PackJob& j = *static_cast<const PackJob*>(ctx);
  const int64_t p0 = j.panels * part / j.parts, p1 = j.panels * (part + 1) / j.parts;
  if (j.b) {
    gK->packB(j.g->b, j.g->k, j.g->n, j.g->transB, p0, p1, j.dst);
    return;
  }
  const int64_t mr = gK->mr, r1 = p1 * mr < j.g->m ? p1 * mr : j.g->m;
  gK->packA(j.g->a, j.g->m, j.g->k, j.g->transA, p0 * mr, r1, j.dst);
}

// All `panels` of op(A) (or op(B), with b) packed into dst, shared out over the pool.
void pack_on_pool(const GemmArgs& g, float* dst, int64_t panels, bool b, int threads, float* scratch) {
  PackJob pj{&g, dst, panels, (int)(panels < threads ? panels : threads), b};
  if (!lth::run_parts_scratch(threads, pj.parts, pack_part, &pj, scratch))
    for (int p = 0; p < pj.parts; p++) pack_part(&pj, p, scratch);
}

// n floats from a 64-byte boundary of buf (grown as needed): bPanel's alignment.
float* aligned_floats(std::vector<float>& buf, size_t n) {
  if (buf.size() < n + 16) buf.resize(n + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~(uintptr_t)63);
}

}  // namespace

size_t lth::packed_a_floats(int64_t m, int64_t k) { return (size_t)((m + gK->mr - 1) / gK->mr * gK->mr * k); }

const float* lth::pack_a(const float* a, int64_t m, int64_t k, bool transA, std::vector<float>& buf) {
  const size_t floats = lth::packed_a_floats(m, k);
  if (buf.size() < floats) buf.resize(floats);
  gK->packA(a, m, k, transA, 0, m, buf.data());
  return buf.data();
}

size_t lth::packed_b_floats(int64_t k, int64_t n) { return (size_t)((n + gK->nr - 1) / gK->nr * gK->nr * k); }

const float* lth::pack_b(const float* b, int64_t k, int64_t n, bool transB, std::vector<float>& buf) {
  float* dst = aligned_floats(buf, lth::packed_b_floats(k, n));
  gK->packB(b, k, n, transB, 0, (n + gK->nr - 1) / gK->nr, dst);
  return dst;
}

void lth::matmul(const GemmArgs& g) {
  float* scratch = lth::caller_scratch();
  const int threads = lth::thread_count();
  const int64_t rowTiles = (g.m + gK->mr - 1) / gK->mr, colTiles = (g.n + gK->nr - 1) / gK->nr;
  const double work = (double)g.m * (double)g.n * (double)g.k;
  if (threads > 1 && work >= kGemmParallelMinWork && (rowTiles >= 2 || colTiles >= 2)) {
    // Split the dimension whose split duplicates less packing: splitting columns
    // makes every thread pack all of op(A) (m*k), splitting rows all of op(B) (k*n).
    const bool splitCols = g.m <= g.n ? colTiles >= 2 : rowTiles < 2;
    GemmJob job{g, splitCols, splitCols ? colTiles : rowTiles, 0};
    int64_t chunks = threads;
    if (work >= kBigWork) {
      const int64_t big = (int64_t)threads * kBigChunks, most = job.tiles / kMinChunkTiles;
      chunks = big < most ? big : most > chunks ? most : chunks;
    }
    job.parts = (int)(job.tiles < chunks ? job.tiles : chunks);
    // Split by columns, every part would pack all of op(A) for itself: pack it once, on
    // the pool, for all of them (a 60-row fully connected layer's 4 parts packed its
    // 60 x 16384 input 4 times), unless the kernels read it in place.
    thread_local std::vector<float> packed;
    if (splitCols && job.parts > 1 && !g.aPacked && !(gK->aInPlace && !g.transA)) {
      if (packed.size() < lth::packed_a_floats(g.m, g.k)) packed.resize(lth::packed_a_floats(g.m, g.k));
      pack_on_pool(g, packed.data(), rowTiles, false, threads, scratch);
      job.g.a = packed.data();
      job.g.aPacked = true;
    }
    // Split by rows, every part would pack all of op(B) for itself: pack it once, on the
    // pool, for all of them (the 8 parts of a char-level LSTM's 1024-row weight gradient
    // would pack its 2016 x 256 operand 8 times).
    thread_local std::vector<float> packedB;
    if (!splitCols && job.parts > 1 && !g.bPanel) {
      float* dst = aligned_floats(packedB, lth::packed_b_floats(g.k, g.n));
      pack_on_pool(g, dst, colTiles, true, threads, scratch);
      job.g.b = dst;
      job.g.bPanel = g.k * gK->nr;
    }
    if (lth::run_parts_scratch(threads, job.parts, gemm_part, &job, scratch)) return;
  }
  gK->gemm(g, 0, g.m, 0, g.n, scratch);
}

namespace {

// matmul(a, b, c, m, k, n, transA, transB, accumulate): c [m, n] (+)= op(a)·op(b).
constexpr ArgSpec kMatmulArgs[] = {arg::f32("a"), arg::f32("b"),      arg::f32("c"),      arg::dim("m"),          arg::dim("k"),
                                   arg::dim("n"), arg::flag("transA"), arg::flag("transB"), arg::flag("accumulate")};

napi_value Matmul(napi_env env, napi_callback_info info) {
  lth::Args<9> a(env, info, "matmul", kMatmulArgs);
  if (!a.ok()) return nullptr;
  float *A = a[0].f32(), *B = a[1].f32(), *C = a[2].f32();
  const int64_t m = a[3].dim(), k = a[4].dim(), n = a[5].dim();
  a.need("a", a[0].len, m, k, "m*k");
  a.need("b", a[1].len, k, n, "k*n");
  a.need("c", a[2].len, m, n, "m*n");
  if (!a.ok()) return nullptr;
  if (lth::overlaps(C, (size_t)(m * n) * 4, A, (size_t)(m * k) * 4)) {
    a.fail(true, "c must not share memory with a");
    return nullptr;
  }
  if (lth::overlaps(C, (size_t)(m * n) * 4, B, (size_t)(k * n) * 4)) {
    a.fail(true, "c must not share memory with b");
    return nullptr;
  }
  if (m == 0 || n == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  lth::matmul(GemmArgs{A, B, C, m, k, n, a[6].flag, a[7].flag, a[8].flag});
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_gemm(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"matmul", Matmul}};
  return define_exports(env, exports, kExports);
}
