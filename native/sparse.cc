// Sparse kernels of lth_native: a masked fully connected layer computed only at the
// mask's nonzeros (see native/README.md, "Sparse kernels").
//
// A mask becomes a Pattern once (sparsePattern): blocked row-major order for the forward
// and the weight gradient, a transposed view for the input gradient, built and validated
// natively, so the per-step calls check only their dense buffers. Weight values and gradients are packed per nonzero in
// the pattern's order (see Pattern); the optimiser runs the dense kernels on them.
//
// Layout: activations are transposed into panels of 64 batch columns, [ld/64][features][64]
// (see sparse_impl.h); ld is the batch padded to a multiple of 16, and the padding
// columns of every output are zero.
//
// Each kernel is compiled three times (AVX-512F, AVX2+FMA, baseline) from
// sparse_impl.h with GCC target attributes, and the one matching lth_native's SIMD path
// is used. Rows (or columns) are split across lth_native's pool for big products; each
// is computed by the same instructions whoever runs it, so results do not depend on the
// thread count.

#include "sparse.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <algorithm>
#include <array>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_SP_X86 1
#endif

// The 16-float vectors of the AVX-512 copy never cross a non-inlined call.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "ftz.h"

namespace {

// A mask's nonzeros in packed order: by column blocks of bc columns, then rows, then
// columns, so a product reads the activation rows of one block (bc·64 floats per 64-column
// chunk: L1-sized) for every output row before moving on. Segment (b, r) is packed
// positions [seg[b·rows + r], seg[b·rows + r + 1]). The transposed view, for the input
// gradient, is the same with row blocks of br rows: (b, column i) is [tseg[b·cols + i],
// tseg[b·cols + i + 1]) of trow / tpos (the packed position). rowPtr / colPtr count the
// nonzeros before each row / column, for splitting work across threads.
struct Pattern {
  int64_t rows = 0, cols = 0, nnz = 0;
  int64_t bc = 1, nbc = 0, br = 1, nbr = 0;
  std::vector<int32_t> segV, colV, rowV, flatV, rowPtrV, tsegV, trowV, tposV, colPtrV;
  const int32_t *seg = nullptr, *col = nullptr, *row = nullptr, *flat = nullptr, *rowPtr = nullptr;
  const int32_t *tseg = nullptr, *trow = nullptr, *tpos = nullptr, *colPtr = nullptr;
};

struct SparseKernels {
  void (*forward)(const Pattern&, const float*, const float*, float*, const float*, int64_t, int64_t, int64_t, int64_t,
                  bool);
  void (*inputGrad)(const Pattern&, const float*, const float*, float*, int64_t, int64_t, int64_t);
  void (*weightGrad)(const Pattern&, const float*, const float*, float*, float*, int64_t, int64_t, int64_t);
  void (*toPanels)(const float*, float*, int64_t, int64_t, int64_t);
  void (*fromPanels)(const float*, float*, int64_t, int64_t, int64_t, bool);
  double (*softmaxXent)(const float*, float*, const int32_t*, int64_t, int64_t, int64_t, float);
  void (*reluMask)(float*, const float*, int64_t);
  void (*forwardBlocks)(const Pattern&, const float*, const float*, float*, const float*, int64_t, int64_t, int64_t);
  void (*addAct)(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
  void (*weightGradBlocks)(const Pattern&, const float*, const float*, float*, float*, int64_t, int64_t, int64_t);
  void (*gatherPanels)(const float*, int64_t, const int32_t*, int64_t, int64_t, int64_t, float*, int64_t);
  void (*evalLogits)(const float*, const int32_t*, int64_t, int64_t, int64_t, double*, int64_t*);
};

#ifdef LTH_SP_X86
namespace avx512 {
#define LTH_SP_TARGET __attribute__((target("avx512f,avx2,fma")))
#define LTH_SP_AVX 1
#include "sparse_impl.h"
#undef LTH_SP_AVX
#undef LTH_SP_TARGET
}  // namespace avx512
namespace avx2 {
#define LTH_SP_TARGET __attribute__((target("avx2,fma")))
#define LTH_SP_AVX 1
#include "sparse_impl.h"
#undef LTH_SP_AVX
#undef LTH_SP_TARGET
}  // namespace avx2
#endif
namespace scalar {
#define LTH_SP_TARGET
#define LTH_SP_AVX 0
#include "sparse_impl.h"
#undef LTH_SP_AVX
#undef LTH_SP_TARGET
}  // namespace scalar

const SparseKernels* gS = &scalar::kTable;

using lth::FtzScope;

// Multiply-adds from which a sparse product is split across the pool.
constexpr double kParallelMinWork = 300000.0;

// Runs fn(ctx, i0, i1) over the rows (or columns) of a compressed pattern with pointer
// array ptr, in parts of about equal nonzero counts on the pool when the product has at
// least kParallelMinWork multiply-adds, else on the calling thread.
void for_parts(const int32_t* ptr, int64_t count, int64_t ld, void (*fn)(const void*, int64_t, int64_t),
               const void* ctx) {
  const int threads = lth::thread_count();
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
  lth::run_parts(job.parts, [](void* c, int part) {
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

// The three products over the whole pattern, split across the pool by for_parts.
void forward(const Pattern& p, const float* vals, const float* inT, float* outT, const float* bias, int64_t n,
             int64_t ld, bool relu) {
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

void input_grad(const Pattern& p, const float* vals, const float* gyT, float* gxT, int64_t ld) {
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

void weight_grad(const Pattern& p, const float* gyT, const float* xT, float* gvals, float* gbias, int64_t ld) {
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

#include "napi_args.h"

// The Pattern wrapped by a sparsePattern() object, or nullptr after a TypeError.
const Pattern* pattern_arg(Args& a, size_t i) {
  if (!a.ok()) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(a.env(), a.arg(i), &p) != napi_ok || !p) {
    a.fail(false, "pattern must be an object made by this backend's sparsePattern()");
    return nullptr;
  }
  return static_cast<const Pattern*>(p);
}

// Columns of the panels holding a padded batch of ld: whole panels of 64.
int64_t panel_cols(int64_t ld) { return (ld + 63) / 64 * 64; }

// Checks the length of an activation buffer [features, ld] in panels.
void check_act(Args& a, const char* name, size_t len, int64_t features, int64_t ld) {
  a.need(name, len, features, panel_cols(ld), "features*panelCols(ld)");
}

void check_ld(Args& a, int64_t n, int64_t ld) {
  if (a.ok() && (ld % 16 != 0 || ld == 0)) a.fail(true, "ld must be a positive multiple of 16, got %lld", (long long)ld);
  if (a.ok() && n > ld) a.fail(true, "n = %lld must be <= ld = %lld", (long long)n, (long long)ld);
}

void set_int(napi_env env, napi_value obj, const char* key, int64_t v) {
  napi_value x;
  napi_create_double(env, (double)v, &x);
  napi_set_named_property(env, obj, key, x);
}

// Rows of activations one block of the pattern reads. 64 rows of a 64-column panel are
// 16 KB, so they stay in L1 while every output row takes its nonzeros from them; but each
// (block, row) segment loads and stores its output row once, so sparse patterns take
// bigger blocks, about 5 nonzeros per segment. Measured on LeNet's fc1 (784 -> 300), one
// thread, interleaved runs: at 1.9% density blocks of 256 make the forward 1.15x faster
// than 64 at batch 64 and 1.8x at batch 1008; at 3.6%, 128-256 beat 64 by 1.15-1.4x; at
// 10% and 30%, 64 is best (128 ties at 10%, 256 is 1.2-1.7x slower at 30%).
//
// Above 64, the size is a multiple of 16 such that an even number of blocks ends near the
// middle of the extent: the fused step splits its first layer between two cores at a
// block boundary. LeNet's fc1 at 3.6% took blocks of 144, which put 55% of its columns
// (432 of 784) on one core; blocks of 128 split it 384 / 400.
int64_t block_size(int64_t extent, double density) {
  const double want = density > 0 ? 5.0 / density : (double)extent;
  if (extent < 1) return 1;
  if (want <= 64) return extent < 64 ? extent : 64;
  if (want >= extent) return extent;
  const double half = extent / 2.0;
  const int64_t k = std::max<int64_t>(1, std::llround(half / want));  // blocks in each half
  const int64_t b = std::max<int64_t>(64, (int64_t)(half / (double)k) / 16 * 16);
  return extent < b ? extent : b;
}

void build_pattern(Pattern& p, const float* mask, int64_t rows, int64_t cols) {
  auto kept = [&](int64_t r, int64_t c) { return mask[r * cols + c] != 0.0f || std::isnan(mask[r * cols + c]); };
  p.rows = rows;
  p.cols = cols;
  p.rowPtrV.assign(rows + 1, 0);
  p.colPtrV.assign(cols + 1, 0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++)
      if (kept(r, c)) {
        p.rowPtrV[r + 1]++;
        p.colPtrV[c + 1]++;
      }
  for (int64_t r = 0; r < rows; r++) p.rowPtrV[r + 1] += p.rowPtrV[r];
  for (int64_t c = 0; c < cols; c++) p.colPtrV[c + 1] += p.colPtrV[c];
  p.nnz = p.rowPtrV[rows];
  const double density = rows && cols ? (double)p.nnz / ((double)rows * (double)cols) : 0;
  p.bc = block_size(cols, density);
  p.nbc = cols ? (cols + p.bc - 1) / p.bc : 0;
  p.br = block_size(rows, density);
  p.nbr = rows ? (rows + p.br - 1) / p.br : 0;

  // Packed order: count per (block, row), prefix sums, fill.
  p.segV.assign(p.nbc * rows + 1, 0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++)
      if (kept(r, c)) p.segV[(c / p.bc) * rows + r + 1]++;
  for (int64_t s = 0; s < p.nbc * rows; s++) p.segV[s + 1] += p.segV[s];
  p.colV.resize(p.nnz);
  p.rowV.resize(p.nnz);
  p.flatV.resize(p.nnz);
  std::vector<int32_t> fill(p.segV.begin(), p.segV.end() - 1);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++)
      if (kept(r, c)) {
        const int32_t k = fill[(c / p.bc) * rows + r]++;
        p.colV[k] = (int32_t)c;
        p.rowV[k] = (int32_t)r;
        p.flatV[k] = (int32_t)(r * cols + c);
      }

  // Transposed view: per (row block, column), rows ascending (the packed order visits a
  // column's rows in ascending order).
  p.tsegV.assign(p.nbr * cols + 1, 0);
  for (int64_t k = 0; k < p.nnz; k++) p.tsegV[(p.rowV[k] / p.br) * cols + p.colV[k] + 1]++;
  for (int64_t s = 0; s < p.nbr * cols; s++) p.tsegV[s + 1] += p.tsegV[s];
  p.trowV.resize(p.nnz);
  p.tposV.resize(p.nnz);
  std::vector<int32_t> tfill(p.tsegV.begin(), p.tsegV.end() - 1);
  for (int64_t k = 0; k < p.nnz; k++) {
    const int32_t at = tfill[(p.rowV[k] / p.br) * cols + p.colV[k]]++;
    p.trowV[at] = p.rowV[k];
    p.tposV[at] = (int32_t)k;
  }
  p.seg = p.segV.data();
  p.col = p.colV.data();
  p.row = p.rowV.data();
  p.flat = p.flatV.data();
  p.rowPtr = p.rowPtrV.data();
  p.tseg = p.tsegV.data();
  p.trow = p.trowV.data();
  p.tpos = p.tposV.data();
  p.colPtr = p.colPtrV.data();
}

// ------------------------------------------------------------------ exports

// sparsePattern(mask, rows, cols) -> { rows, cols, nnz, flat }: the nonzeros of mask
// [rows, cols] (entries != 0, NaN included), compressed once for the kernels below.
napi_value SparsePattern(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparsePattern", 3);
  size_t lm;
  const float* mask = a.f32(0, "mask", &lm);
  const int64_t rows = a.dim(1, "rows"), cols = a.dim(2, "cols");
  if (a.ok() && (double)rows * (double)cols > 2147483647.0)
    a.fail(true, "rows*cols = %.0f must be below 2^31 (indices are int32)", (double)rows * (double)cols);
  if (a.ok() && (int64_t)lm != rows * cols)
    a.fail(true, "mask has %zu elements, expected rows*cols = %lld", lm, (long long)(rows * cols));
  if (!a.ok()) return nullptr;
  auto* p = new Pattern();
  build_pattern(*p, mask, rows, cols);
  napi_value obj, flat, buf;
  void* data = nullptr;
  napi_create_object(env, &obj);
  set_int(env, obj, "rows", rows);
  set_int(env, obj, "cols", cols);
  set_int(env, obj, "nnz", p->nnz);
  napi_create_arraybuffer(env, (size_t)p->nnz * 4, &data, &buf);
  if (p->nnz) std::memcpy(data, p->flat, (size_t)p->nnz * 4);
  napi_create_typedarray(env, napi_int32_array, (size_t)p->nnz, buf, 0, &flat);
  napi_set_named_property(env, obj, "flat", flat);
  if (napi_wrap(env, obj, p, [](napi_env, void* d, void*) { delete static_cast<Pattern*>(d); }, nullptr, nullptr) !=
      napi_ok) {
    delete p;
    napi_throw_error(env, nullptr, "sparsePattern: cannot wrap the pattern");
    return nullptr;
  }
  return obj;
}

// sparseForward(pattern, vals, inT, outT, bias, n, ld, relu)
napi_value SparseForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseForward", 8);
  const Pattern* p = pattern_arg(a, 0);
  size_t lv, lin, lout, lb;
  bool hasBias = false;
  const float* vals = a.f32(1, "vals", &lv);
  const float* inT = a.f32(2, "inT", &lin);
  float* outT = a.f32(3, "outT", &lout);
  const float* bias = a.f32OrNull(4, "bias", &lb, &hasBias);
  const int64_t n = a.dim(5, "n"), ld = a.dim(6, "ld");
  const bool relu = a.flag(7, "relu");
  check_ld(a, n, ld);
  if (!a.ok()) return nullptr;
  a.need("vals", lv, p->nnz, 1, "nnz");
  check_act(a, "inT", lin, p->cols, ld);
  check_act(a, "outT", lout, p->rows, ld);
  if (hasBias) a.need("bias", lb, p->rows, 1, "rows");
  if (a.ok() && (overlaps(outT, lout * 4, inT, lin * 4) || overlaps(outT, lout * 4, vals, lv * 4)))
    a.fail(true, "outT must not share memory with inT or vals");
  if (!a.ok()) return nullptr;
  if (p->rows == 0) return undefined_value(env);
  FtzScope ftz;
  forward(*p, vals, inT, outT, hasBias ? bias : nullptr, n, ld, relu);
  return undefined_value(env);
}

// sparseInputGrad(pattern, vals, gyT, gxT, ld)
napi_value SparseInputGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseInputGrad", 5);
  const Pattern* p = pattern_arg(a, 0);
  size_t lv, lg, lx;
  const float* vals = a.f32(1, "vals", &lv);
  const float* gyT = a.f32(2, "gyT", &lg);
  float* gxT = a.f32(3, "gxT", &lx);
  const int64_t ld = a.dim(4, "ld");
  check_ld(a, 0, ld);
  if (!a.ok()) return nullptr;
  a.need("vals", lv, p->nnz, 1, "nnz");
  check_act(a, "gyT", lg, p->rows, ld);
  check_act(a, "gxT", lx, p->cols, ld);
  if (a.ok() && (overlaps(gxT, lx * 4, gyT, lg * 4) || overlaps(gxT, lx * 4, vals, lv * 4)))
    a.fail(true, "gxT must not share memory with gyT or vals");
  if (!a.ok()) return nullptr;
  if (p->cols == 0) return undefined_value(env);
  FtzScope ftz;
  input_grad(*p, vals, gyT, gxT, ld);
  return undefined_value(env);
}

// sparseWeightGrad(pattern, gyT, xT, gvals, gbias, ld)
napi_value SparseWeightGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseWeightGrad", 6);
  const Pattern* p = pattern_arg(a, 0);
  size_t lg, lx, lv, lb;
  bool hasVals = false, hasBias = false;
  const float* gyT = a.f32(1, "gyT", &lg);
  const float* xT = a.f32(2, "xT", &lx);
  float* gvals = a.f32OrNull(3, "gvals", &lv, &hasVals);
  float* gbias = a.f32OrNull(4, "gbias", &lb, &hasBias);
  const int64_t ld = a.dim(5, "ld");
  check_ld(a, 0, ld);
  if (!a.ok()) return nullptr;
  check_act(a, "gyT", lg, p->rows, ld);
  check_act(a, "xT", lx, p->cols, ld);
  if (hasVals) a.need("gvals", lv, p->nnz, 1, "nnz");
  if (hasBias) a.need("gbias", lb, p->rows, 1, "rows");
  for (float* out : {hasVals ? gvals : nullptr, hasBias ? gbias : nullptr})
    if (a.ok() && out && (overlaps(out, (out == gvals ? lv : lb) * 4, gyT, lg * 4) || overlaps(out, (out == gvals ? lv : lb) * 4, xT, lx * 4)))
      a.fail(true, "gvals and gbias must not share memory with gyT or xT");
  if (!a.ok()) return nullptr;
  if (p->rows == 0 || (!hasVals && !hasBias)) return undefined_value(env);
  FtzScope ftz;
  weight_grad(*p, gyT, xT, hasVals ? gvals : nullptr, hasBias ? gbias : nullptr, ld);
  return undefined_value(env);
}

// toPanels(x, out, n, features, ld): x [n, features] → out in panels, zero padded.
napi_value ToPanels(napi_env env, napi_callback_info info) {
  Args a(env, info, "toPanels", 5);
  size_t lx, lo;
  const float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  const int64_t n = a.dim(2, "n"), features = a.dim(3, "features"), ld = a.dim(4, "ld");
  check_ld(a, n, ld);
  a.need("x", lx, n, features, "n*features");
  check_act(a, "out", lo, features, ld);
  if (a.ok() && overlaps(out, lo * 4, x, lx * 4)) a.fail(true, "out must not share memory with x");
  if (!a.ok()) return nullptr;
  if (features == 0) return undefined_value(env);
  FtzScope ftz;
  gS->toPanels(x, out, n, features, ld);
  return undefined_value(env);
}

// fromPanels(panels, y, n, features, ld, accumulate): y [n, features] (+)= the panels.
napi_value FromPanels(napi_env env, napi_callback_info info) {
  Args a(env, info, "fromPanels", 6);
  size_t lp, ly;
  const float* in = a.f32(0, "panels", &lp);
  float* y = a.f32(1, "y", &ly);
  const int64_t n = a.dim(2, "n"), features = a.dim(3, "features"), ld = a.dim(4, "ld");
  const bool acc = a.flag(5, "accumulate");
  check_ld(a, n, ld);
  check_act(a, "panels", lp, features, ld);
  a.need("y", ly, n, features, "n*features");
  if (a.ok() && overlaps(y, ly * 4, in, lp * 4)) a.fail(true, "y must not share memory with panels");
  if (!a.ok()) return nullptr;
  if (features == 0 || n == 0) return undefined_value(env);
  FtzScope ftz;
  gS->fromPanels(in, y, n, features, ld, acc);
  return undefined_value(env);
}

// ------------------------------------------------------------------ fused MLP step

// One training step of a chain of sparse layers in one call. The first layer, the widest,
// is split by its column blocks into two halves of about equal nonzeros, each run as one
// task on the pool: the task gathers its half of the input features straight from the data
// set into panels and computes that half's partial sums of the layer's outputs; after the
// backward pass it computes the weight gradient of its own nonzeros (contiguous in packed
// order) and their update. So each core reads only the inputs it gathered itself. The
// caller adds the two partial sums and runs the other layers, the loss and their backward
// pass and update; the first half is always the caller's (run_parts' callerFirst), so every
// buffer stays on one core from step to step (measured: letting the pool's cores take the
// small layers' work made the caller's next step pay for fetching it back). The split
// depends on the pattern only, so results do not depend on the thread count.
//
// While the caller runs the other layers (phase 2), the other core gathers the next
// batch's inputs, both halves, into a second buffer of the prepared chain; the next step
// uses them when it asks for the same rows of the same data set. Measured on the 3.6%
// LeNet step (interleaved, 2 threads): median 196 -> 162 us; the caller's half then comes
// from the other core's cache in phase 1, which costs less than gathering it from memory.

struct MlpLayer {
  const Pattern* p;
  float *vals, *bias, *gvals, *gbias;
  bool relu;
  float *w0, *w1, *b0, *b1;  // the optimiser's state of the weight and the bias (with a rule)
};

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

struct MlpStep {
  std::vector<MlpLayer> layers;
  const float* src;
  const int32_t* rows;  // the samples' rows of src
  int64_t n, ld;
  int64_t split;        // first column block of the second half
  const lth::UpdateRule* rule;  // the optimiser update to apply after the gradients, or null
  bool update;                  // rule given and the loss finite
  std::vector<float*> act;   // act[0] = input panels, act[l + 1] = layer l's outputs
  std::vector<float*> grad;  // grad[l] = gradient of layer l's outputs
  float* half1;              // the second half's partial sums of layer 0
  bool gathered;             // act[0] already holds the batch (gathered ahead by the step before)
  const int32_t* nextRows;   // the next batch's rows to gather ahead into nextIn, or null
  float* nextIn;
  double loss;               // the summed loss, from the caller's part of phase 2
};

// The packed position of the first nonzero of column block b (nnz for b = nbc).
int64_t block_start(const Pattern& p, int64_t b) { return b < p.nbc ? (int64_t)p.seg[b * p.rows] : p.nnz; }

// Phase 1, half h: gather the half's input features, partial sums of layer 0.
void mlp_first_layer(void* ctx, int h) {
  const MlpStep& s = *static_cast<const MlpStep*>(ctx);
  const MlpLayer& y = s.layers[0];
  const Pattern& p = *y.p;
  const int64_t b0 = h ? s.split : 0, b1 = h ? p.nbc : s.split;
  const int64_t f0 = std::min(b0 * p.bc, p.cols), f1 = std::min(b1 * p.bc, p.cols);
  if (!s.gathered) gS->gatherPanels(s.src, p.cols, s.rows, s.n, f0, f1, s.act[0], s.ld);
  gS->forwardBlocks(p, y.vals, s.act[0], h ? s.half1 : s.act[1], h ? nullptr : y.bias, b0, b1, s.ld);
}

// Phase 3, half h: the weight gradient of layer 0 at the half's nonzeros (and the bias's,
// on half 0), then their update.
void mlp_first_layer_grad(void* ctx, int part) {
  const MlpStep& s = *static_cast<const MlpStep*>(ctx);
  const MlpLayer& y = s.layers[0];
  const Pattern& p = *y.p;
  const int64_t b0 = part ? s.split : 0, b1 = part ? p.nbc : s.split;
  gS->weightGradBlocks(p, s.grad[0], s.act[0], y.gvals, part ? nullptr : y.gbias, b0, b1, s.ld);
  if (!s.update) return;
  // The half's nonzeros are packed positions [start of block b0, start of block b1).
  const int64_t k0 = block_start(p, b0), k = block_start(p, b1) - k0;
  lth::update_params(*s.rule, y.vals + k0, y.gvals + k0, y.w0 + k0, y.w1 ? y.w1 + k0 : nullptr, nullptr, k);
  if (part == 0 && y.bias) lth::update_params(*s.rule, y.bias, y.gbias, y.b0, y.b1, nullptr, p.rows);
}

// Phase 2, the caller: the sum of layer 0's halves, the other layers forward, the loss,
// their backward pass and update, down to the gradient of layer 0's outputs.
void mlp_middle(MlpStep& s, const int32_t* labels) {
  const size_t L = s.layers.size();
  gS->addAct(s.act[1], s.half1, s.act[1], s.layers[0].p->rows, s.n, s.ld, s.layers[0].relu);
  for (size_t l = 1; l < L; l++) {
    const MlpLayer& y = s.layers[l];
    forward(*y.p, y.vals, s.act[l], s.act[l + 1], y.bias, s.n, s.ld, y.relu);
  }
  s.loss = gS->softmaxXent(s.act[L], s.grad[L - 1], labels, s.layers[L - 1].p->rows, s.n, s.ld,
                           (float)(1.0 / (double)s.n));
  s.update = s.rule && std::isfinite(s.loss);
  for (size_t l = L; l-- > 0;) {
    const MlpLayer& y = s.layers[l];
    if (y.relu) gS->reluMask(s.grad[l], s.act[l + 1], y.p->rows * panel_cols(s.ld));
    if (l == 0) break;
    input_grad(*y.p, y.vals, s.grad[l], s.grad[l - 1], s.ld);
    weight_grad(*y.p, s.grad[l], s.act[l], y.gvals, y.gbias, s.ld);
    if (!s.update) continue;
    lth::update_params(*s.rule, y.vals, y.gvals, y.w0, y.w1, nullptr, y.p->nnz);
    if (y.bias) lth::update_params(*s.rule, y.bias, y.gbias, y.b0, y.b1, nullptr, y.p->rows);
  }
}

double mlp_step(MlpStep& s, const int32_t* labels) {
  const Pattern& p0 = *s.layers[0].p;
  // Split layer 0's column blocks where the nonzeros before the block are closest to half.
  s.split = 0;
  for (int64_t b = 1; b <= p0.nbc; b++)
    if (std::llabs(2 * block_start(p0, b) - p0.nnz) < std::llabs(2 * block_start(p0, s.split) - p0.nnz)) s.split = b;
  lth::run_parts(2, mlp_first_layer, &s, true);
  if (!s.nextIn) {
    mlp_middle(s, labels);
  } else {
    // Phase 2 is the caller's alone, so the other core gathers the next batch meanwhile
    // (or the caller does, after its part, if no worker took it).
    struct Middle {
      MlpStep& s;
      const int32_t* labels;
    } m{s, labels};
    lth::run_parts(2, [](void* c, int part) {
      Middle& m = *static_cast<Middle*>(c);
      if (part == 0) return mlp_middle(m.s, m.labels);
      gS->gatherPanels(m.s.src, m.s.layers[0].p->cols, m.s.nextRows, m.s.n, 0, m.s.layers[0].p->cols, m.s.nextIn, m.s.ld);
    }, &m, true);
  }
  lth::run_parts(2, mlp_first_layer_grad, &s, true);
  return s.loss / (double)s.n;
}

thread_local std::vector<float> tMlpWorkspace;

// The first 64-byte aligned float of v (which has 16 floats to spare): every panel row
// (64 floats) starts on a cache line.
float* aligned64(std::vector<float>& v) {
  return v.data() + (16 - (reinterpret_cast<uintptr_t>(v.data()) / 4) % 16) % 16;
}
thread_local std::vector<int32_t> tMlpLabels;

// a.need(...) for "layer l <what>", the name formatted only when the check fails (this
// runs on every training step).
void need_layer(Args& a, size_t l, const char* what, size_t len, int64_t count, const char* of) {
  if (!a.ok() || (int64_t)len >= count) return;
  char name[64];
  std::snprintf(name, sizeof name, "layer %zu %s", l, what);
  a.need(name, len, count, 1, of);
}

// Layer l's first four arguments, from argument i: pattern, vals, bias | null, relu.
// Checks their sizes, that the weight is not empty and that it takes the outputs of the
// layer before (the last of `before`); *lv and *lb get the lengths of vals and bias.
// False after a failure (an exception is pending).
bool layer_arg(Args& a, size_t i, size_t l, const std::vector<MlpLayer>& before, MlpLayer& y, size_t* lv, size_t* lb) {
  bool hasBias = false;
  y.p = pattern_arg(a, i);
  y.vals = a.f32(i + 1, "vals", lv);
  y.bias = a.f32OrNull(i + 2, "bias", lb, &hasBias);
  y.relu = a.flag(i + 3, "relu");
  if (!a.ok()) return false;
  need_layer(a, l, "vals", *lv, y.p->nnz, "nnz");
  if (hasBias) need_layer(a, l, "bias", *lb, y.p->rows, "rows");
  if (a.ok() && !before.empty() && before.back().p->rows != y.p->cols)
    a.fail(true, "layer %zu takes %lld inputs but layer %zu gives %lld", l, (long long)y.p->cols, l - 1,
           (long long)before.back().p->rows);
  if (a.ok() && (y.p->rows == 0 || y.p->cols == 0)) a.fail(true, "layer %zu has an empty weight", l);
  return a.ok();
}

// A chain of layers checked once for sparseMlpStep, with references that keep its arrays
// alive. A training loop passes the same arrays every step, and reading some forty typed
// arrays through Node-API took ~10 us of a ~170 us step (3.6% LeNet); the step then reads
// only its own few arguments. The arrays must keep their memory (not be transferred).
struct PreparedMlp {
  std::vector<MlpLayer> layers;  // every state array given, whatever the rule will want
  std::vector<std::array<size_t, 4>> stateLen;  // lengths of w0, w1, b0, b1
  std::vector<std::array<bool, 4>> stateGiven;  // (an empty state array is given but null)
  napi_env env;
  std::vector<napi_ref> refs;
  // Input panels of two batches: the current one and the next, gathered ahead during this
  // step (see mlp_step) for the rows `aheadRows` of `aheadSrc` when `ahead` is set.
  std::vector<float> in[2];
  int cur = 0;
  bool ahead = false;
  const float* aheadSrc = nullptr;
  size_t aheadLen = 0;
  std::vector<int32_t> aheadRows;
  ~PreparedMlp() {
    for (napi_ref r : refs) napi_delete_reference(env, r);
  }
};

const char* const kStateName[4] = {"w0", "w1", "b0", "b1"};

// sparseMlpPrepare(...layers) -> a handle for sparseMlpStep. Each layer is ten arguments:
// pattern, vals, bias | null, relu, gvals, gbias | null, then the optimiser state w0, w1,
// b0, b1 (each a Float32Array or null). Checks their sizes, that the layers chain, and
// that no two of a layer's arrays share memory.
napi_value SparseMlpPrepare(napi_env env, napi_callback_info info) {
  // Its errors carry the step's name: the Backend's sparseMlpStep is what a caller called.
  Args a(env, info, "sparseMlpStep", 10);
  constexpr size_t kPerLayer = 10;
  if (a.ok() && (a.argc() == 0 || a.argc() % kPerLayer != 0))
    a.fail(false, "expected %zu arguments per layer, got %zu", kPerLayer, a.argc());
  auto prep = std::make_unique<PreparedMlp>();
  prep->env = env;
  const size_t L = a.ok() ? a.argc() / kPerLayer : 0;
  for (size_t l = 0; l < L && a.ok(); l++) {
    const size_t i = kPerLayer * l;
    MlpLayer y{};
    size_t lv, lb, lgv, lgb;
    std::array<size_t, 4> ls{};
    bool hasGBias = false, hasState[4] = {};
    if (!layer_arg(a, i, l, prep->layers, y, &lv, &lb)) break;
    y.gvals = a.f32(i + 4, "gvals", &lgv);
    y.gbias = a.f32OrNull(i + 5, "gbias", &lgb, &hasGBias);
    float** state[4] = {&y.w0, &y.w1, &y.b0, &y.b1};
    for (int k = 0; k < 4; k++) *state[k] = a.f32OrNull(i + 6 + k, kStateName[k], &ls[k], &hasState[k]);
    if (!a.ok()) break;
    need_layer(a, l, "gvals", lgv, y.p->nnz, "nnz");
    if (hasGBias) need_layer(a, l, "gbias", lgb, y.p->rows, "rows");
    // Everything the step writes must be its own memory.
    const struct { const void* p; size_t bytes; } bufs[] = {
        {y.vals, lv * 4}, {y.bias, lb * 4}, {y.gvals, lgv * 4}, {y.gbias, lgb * 4},
        {y.w0, ls[0] * 4}, {y.w1, ls[1] * 4}, {y.b0, ls[2] * 4}, {y.b1, ls[3] * 4}};
    for (size_t u = 0; u < 8 && a.ok(); u++)
      for (size_t v = u + 1; v < 8 && a.ok(); v++)
        if (bufs[u].p && bufs[v].p && overlaps(bufs[u].p, bufs[u].bytes, bufs[v].p, bufs[v].bytes))
          a.fail(true, "layer %zu: the values, gradients and optimiser state must not share memory", l);
    prep->layers.push_back(y);
    prep->stateLen.push_back(ls);
    prep->stateGiven.push_back({hasState[0], hasState[1], hasState[2], hasState[3]});
  }
  if (!a.ok()) return nullptr;
  for (size_t i = 0; i < a.argc(); i++) {
    napi_valuetype vt;
    napi_typeof(env, a.arg(i), &vt);
    if (vt != napi_object) continue;
    napi_ref r;
    if (napi_create_reference(env, a.arg(i), 1, &r) == napi_ok) prep->refs.push_back(r);
  }
  napi_value handle;
  napi_create_object(env, &handle);
  if (napi_wrap(env, handle, prep.get(), [](napi_env, void* d, void*) { delete static_cast<PreparedMlp*>(d); }, nullptr,
                nullptr) != napi_ok) {
    napi_throw_error(env, nullptr, "sparseMlpPrepare: cannot wrap the handle");
    return nullptr;
  }
  prep.release();
  return handle;
}

// sparseMlpStep(prepared, src, srcLabels, indices, from, n, rule, losses) -> mean loss of
// the last step run. The layers are a sparseMlpPrepare handle's; the batch is rows
// indices[from .. from + n) of src [samples, inputs] (row-major) with their labels. The
// last layer's outputs are the logits. Adds the gradient of the mean softmax
// cross-entropy to gvals and gbias; with a rule (Float64Array [kind (1 Adam, 2 SGD), lr,
// beta1, beta2, eps, step, momentum, weightDecay], or null for none) and a finite loss,
// then applies the update to vals and bias from their gradients (zeroing them) and state,
// as adam / sgd. With losses (a Float64Array, or null for one step), runs losses.length
// steps on consecutive batches, the rule's step count advancing by one a step, writes
// each step's mean loss, and stops after a step whose loss is not finite. Every index and
// label is checked before the first step.
napi_value SparseMlpStep(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseMlpStep", 8);
  size_t lsrc, llab, lidx, lrule, llosses = 1;
  bool hasRule = false, hasLosses = false;
  void* handle = nullptr;
  if (a.ok() && (napi_unwrap(env, a.arg(0), &handle) != napi_ok || !handle))
    a.fail(false, "prepared must be an object made by this backend's sparseMlpPrepare()");
  const float* src = a.f32(1, "src", &lsrc);
  const int32_t* srcLabels = a.i32(2, "srcLabels", &llab);
  const int32_t* indices = a.i32(3, "indices", &lidx);
  const int64_t from = a.dim(4, "from"), n = a.dim(5, "n", 1);
  const double* ruleArgs = static_cast<const double*>(a.array(6, "rule", napi_float64_array, &lrule, true, &hasRule));
  double* losses = static_cast<double*>(a.array(7, "losses", napi_float64_array, &llosses, true, &hasLosses));
  const int64_t steps = hasLosses ? (int64_t)llosses : 1;
  if (a.ok() && steps < 1) a.fail(true, "losses must hold at least one step");
  lth::UpdateRule rule{};
  if (hasRule) {
    a.need("rule", lrule, 8, 1, "8");
    if (a.ok() && ruleArgs[0] != 1 && ruleArgs[0] != 2) a.fail(true, "rule[0] must be 1 (Adam) or 2 (SGD), got %g", ruleArgs[0]);
    if (a.ok())
      rule = {ruleArgs[0] == 1, ruleArgs[1], ruleArgs[2], ruleArgs[3], ruleArgs[4], ruleArgs[5], ruleArgs[6], ruleArgs[7]};
  }
  if (!a.ok()) return nullptr;
  PreparedMlp& prep = *static_cast<PreparedMlp*>(handle);
  MlpStep s;
  s.rule = hasRule ? &rule : nullptr;
  s.layers = prep.layers;
  for (size_t l = 0; l < s.layers.size() && hasRule && a.ok(); l++) {
    // Adam needs both moments, SGD its momentum buffer; a bias is updated with its gradient.
    MlpLayer& y = s.layers[l];
    float** state[4] = {&y.w0, &y.w1, &y.b0, &y.b1};
    for (int k = 0; k < 4 && a.ok(); k++) {
      const bool wanted = (k % 2 == 0 || rule.adam) && (k < 2 || y.bias);
      if (wanted && !prep.stateGiven[l][k]) a.fail(false, "layer %zu: %s must be a Float32Array for the update", l, kStateName[k]);
      if (wanted) need_layer(a, l, kStateName[k], prep.stateLen[l][k], k < 2 ? y.p->nnz : y.p->rows, k < 2 ? "nnz" : "rows");
      if (!wanted) *state[k] = nullptr;
    }
    // A given gbias is not null: it holds rows >= 1 values (checked when prepared).
    if (a.ok() && y.bias && !y.gbias) a.fail(false, "layer %zu: gbias must be a Float32Array for the update", l);
  }
  if (!a.ok()) return nullptr;
  const size_t L = s.layers.size();
  const int64_t inputs = s.layers[0].p->cols, classes = s.layers.back().p->rows;
  const int64_t samples = (int64_t)(lsrc / (size_t)inputs);
  if (a.ok() && (int64_t)lsrc % inputs != 0)
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
  a.need("srcLabels", llab, samples, 1, "samples");
  a.need("indices", lidx, from + steps * n, 1, hasLosses ? "from+n*steps" : "from+n");
  if (!a.ok()) return nullptr;
  // Every batch's labels: scattered over the data set's labels, each is likely a cache
  // miss, so a batch's are all requested before any is waited for.
  tMlpLabels.resize((size_t)(steps * n));
  int32_t* labels = tMlpLabels.data();
  for (int64_t b = from; b < from + steps * n; b += n) {
    for (int64_t i = b; i < b + n; i++) {
      if (indices[i] < 0 || indices[i] >= samples) {
        a.fail(true, "indices[%lld] = %d is outside [0, %lld)", (long long)i, indices[i], (long long)samples);
        return nullptr;
      }
      __builtin_prefetch(srcLabels + indices[i]);
    }
    for (int64_t i = b; i < b + n; i++) {
      const int32_t label = labels[i - from] = srcLabels[indices[i]];
      if (label < 0 || label >= classes) {
        a.fail(true, "srcLabels[%d] = %d is outside [0, %lld)", indices[i], label, (long long)classes);
        return nullptr;
      }
    }
  }
  s.src = src;
  s.n = n;
  s.ld = round16(n);
  // Workspace: the input panels (see below), each layer's outputs and their gradient,
  // layer 0's second half.
  const int64_t cols = panel_cols(s.ld);
  std::vector<int64_t> sizes;
  for (const MlpLayer& y : s.layers) sizes.push_back(y.p->rows * cols);
  for (const MlpLayer& y : s.layers) sizes.push_back(y.p->rows * cols);
  sizes.push_back(s.layers[0].p->rows * cols);
  size_t total = 16;
  for (int64_t z : sizes) total += (size_t)z;
  if (tMlpWorkspace.size() < total) tMlpWorkspace.resize(total);
  float* w = aligned64(tMlpWorkspace);
  s.act.push_back(nullptr);
  for (size_t i = 0; i < sizes.size(); i++) {
    if (i < L) s.act.push_back(w);
    else if (i < 2 * L) s.grad.push_back(w);
    else s.half1 = w;
    w += sizes[i];
  }
  for (std::vector<float>& buf : prep.in)
    if (buf.size() < (size_t)(inputs * cols) + 16) buf.resize((size_t)(inputs * cols) + 16);
  FtzScope ftz;
  double loss = 0;
  for (int64_t step = 0, at = from; step < steps; step++, at += n) {
    s.rows = indices + at;
    // The input panels: gathered ahead by the step before when it read the same rows of
    // the same src (which must not change in between, see Backend.sparseMlpStep).
    s.gathered = prep.ahead && prep.aheadSrc == src && prep.aheadLen == lsrc && prep.aheadRows.size() == (size_t)n &&
                 std::equal(s.rows, s.rows + n, prep.aheadRows.begin());
    prep.ahead = false;
    s.act[0] = aligned64(prep.in[prep.cur]);
    // The next batch, rows indices[at + n .. at + 2n), when it is whole and valid (checked
    // above when this call runs it).
    s.nextRows = nullptr;
    s.nextIn = nullptr;
    if (at + 2 * n <= (int64_t)lidx) {
      prep.aheadRows.assign(indices + at + n, indices + at + 2 * n);
      if (at + 2 * n <= from + steps * n ||
          std::all_of(prep.aheadRows.begin(), prep.aheadRows.end(), [&](int32_t r) { return r >= 0 && r < samples; })) {
        s.nextRows = prep.aheadRows.data();
        s.nextIn = aligned64(prep.in[prep.cur ^ 1]);
      }
    }
    loss = mlp_step(s, labels + (at - from));
    if (s.nextIn) {
      prep.cur ^= 1;
      prep.ahead = true;
      prep.aheadSrc = src;
      prep.aheadLen = lsrc;
    }
    if (hasLosses) losses[step] = loss;
    if (!std::isfinite(loss)) break;
    rule.step += 1;
  }
  return number_value(env, loss);
}

// ------------------------------------------------------------------ fused MLP evaluation

// The loss and accuracy of a chain of sparse layers over a whole data set in one call, in
// chunks of 64 samples: one panel, the kernels' best shape (at 1,000 columns they are
// L2-bound), and a chunk's activations stay in its core's cache. Chunks run as parts on
// the pool, each on its thread's own workspace; their sums are added in chunk order, so
// results do not depend on threads.
constexpr int64_t kEvalChunk = 64;

struct MlpEval {
  std::vector<MlpLayer> layers;
  const float* src;
  const int32_t* labels;
  int64_t samples;
  std::vector<double> loss;
  std::vector<int64_t> correct;
};

thread_local std::vector<float> tEvalWorkspace;

void mlp_eval_chunk(void* ctx, int chunk) {
  MlpEval& e = *static_cast<MlpEval*>(ctx);
  const size_t L = e.layers.size();
  const int64_t c0 = (int64_t)chunk * kEvalChunk, m = std::min(kEvalChunk, e.samples - c0), ld = round16(m);
  int64_t floats = 16 + e.layers[0].p->cols * kEvalChunk;
  for (const MlpLayer& y : e.layers) floats += y.p->rows * kEvalChunk;
  if (tEvalWorkspace.size() < (size_t)floats) tEvalWorkspace.resize((size_t)floats);
  float* w = aligned64(tEvalWorkspace);
  std::vector<float*> act{w};
  w += e.layers[0].p->cols * kEvalChunk;
  for (const MlpLayer& y : e.layers) {
    act.push_back(w);
    w += y.p->rows * kEvalChunk;
  }
  FtzScope ftz;  // the pool's threads have it on; the caller may not
  gS->toPanels(e.src + c0 * e.layers[0].p->cols, act[0], m, e.layers[0].p->cols, ld);
  for (size_t l = 0; l < L; l++) {
    const MlpLayer& y = e.layers[l];
    gS->forward(*y.p, y.vals, act[l], act[l + 1], y.bias, 0, y.p->rows, m, ld, y.relu);
  }
  e.loss[chunk] = 0;
  e.correct[chunk] = 0;
  gS->evalLogits(act[L], e.labels + c0, e.layers[L - 1].p->rows, m, ld, &e.loss[chunk], &e.correct[chunk]);
}

// sparseMlpEval(src, srcLabels, out, ...layers) -> undefined. Every sample of src
// [samples, inputs] (row-major) through the chain; out (a Float64Array of 2) gets the
// summed softmax cross-entropy and the number of samples whose first maximum logit is
// their label. Each layer is four arguments: pattern, vals, bias | null, relu.
napi_value SparseMlpEval(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseMlpEval", 7);
  size_t lsrc, llab, lout;
  const float* src = a.f32(0, "src", &lsrc);
  const int32_t* srcLabels = a.i32(1, "srcLabels", &llab);
  double* out = static_cast<double*>(a.array(2, "out", napi_float64_array, &lout));
  a.need("out", lout, 2, 1, "2");
  constexpr size_t kPerLayer = 4;
  if (a.ok() && (a.argc() - 3) % kPerLayer != 0)
    a.fail(false, "expected %zu arguments per layer after src, srcLabels, out; got %zu", kPerLayer, a.argc() - 3);
  MlpEval e;
  const size_t L = a.ok() ? (a.argc() - 3) / kPerLayer : 0;
  for (size_t l = 0; l < L && a.ok(); l++) {
    const size_t i = 3 + kPerLayer * l;
    MlpLayer y{};
    size_t lv, lb;
    if (!layer_arg(a, i, l, e.layers, y, &lv, &lb)) break;
    e.layers.push_back(y);
  }
  if (a.ok() && L == 0) a.fail(false, "expected at least one layer");
  if (!a.ok()) return nullptr;
  const int64_t inputs = e.layers[0].p->cols, classes = e.layers.back().p->rows;
  if ((int64_t)lsrc % inputs != 0) {
    a.fail(true, "src has %zu elements, not a whole number of samples of %lld", lsrc, (long long)inputs);
    return nullptr;
  }
  e.samples = (int64_t)lsrc / inputs;
  a.need("srcLabels", llab, e.samples, 1, "samples");
  if (!a.ok()) return nullptr;
  for (int64_t i = 0; i < e.samples; i++)
    if (srcLabels[i] < 0 || srcLabels[i] >= classes) {
      a.fail(true, "srcLabels[%lld] = %d is outside [0, %lld)", (long long)i, srcLabels[i], (long long)classes);
      return nullptr;
    }
  e.src = src;
  e.labels = srcLabels;
  const int64_t chunks = (e.samples + kEvalChunk - 1) / kEvalChunk;
  if (chunks >= 65536) {
    a.fail(true, "%lld samples are more than one call evaluates (%lld)", (long long)e.samples, (long long)(65535 * kEvalChunk));
    return nullptr;
  }
  e.loss.assign((size_t)chunks, 0);
  e.correct.assign((size_t)chunks, 0);
  lth::run_parts((int)chunks, mlp_eval_chunk, &e);
  out[0] = 0;
  out[1] = 0;
  for (int64_t q = 0; q < chunks; q++) {
    out[0] += e.loss[q];
    out[1] += (double)e.correct[q];
  }
  return undefined_value(env);
}

}  // namespace

bool lth::register_sparse(napi_env env, napi_value exports, const char* simd) {
#ifdef LTH_SP_X86
  if (!std::strcmp(simd, "avx512")) gS = &avx512::kTable;
  else if (!std::strcmp(simd, "avx2")) gS = &avx2::kTable;
  else gS = &scalar::kTable;
#else
  (void)simd;
#endif
  const napi_property_descriptor props[] = {
      {"sparsePattern", nullptr, SparsePattern, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseForward", nullptr, SparseForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseInputGrad", nullptr, SparseInputGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseWeightGrad", nullptr, SparseWeightGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"toPanels", nullptr, ToPanels, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"fromPanels", nullptr, FromPanels, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseMlpPrepare", nullptr, SparseMlpPrepare, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseMlpStep", nullptr, SparseMlpStep, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseMlpEval", nullptr, SparseMlpEval, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
