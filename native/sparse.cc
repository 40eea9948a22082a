// Sparse kernels of lth_native: a masked fully connected layer computed only at the
// mask's nonzeros, and optimiser updates over the nonzeros only (see native/README.md,
// "Sparse kernels").
//
// Layout: activations are transposed, [features, ld] with the batch contiguous (ld >= n,
// callers round it up to 16 and keep the padding zero), so every nonzero w of the
// compressed weight is one vector FMA over the batch: y[j,:] += w·x[i,:]. The weight
// stays dense ([out, in], the Tensor's data); the compressed index (CSR for the forward
// and the weight gradient, CSC for the input gradient) says which entries to read.
//
// Each kernel is compiled three times (AVX-512F, AVX2+FMA, baseline) from
// sparse_impl.h with GCC target attributes, and the one matching lth_native's SIMD path
// is used. Rows are split across lth_native's pool for big products; every row is
// computed by the same instructions whoever runs it, so results do not depend on the
// thread count.

#include "sparse.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_SP_X86 1
#endif

// The 16-float vectors of the AVX-512 copy never cross a non-inlined call.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

struct SparseKernels {
  void (*spmm)(const float*, const int32_t*, const int32_t*, int64_t, int64_t, const float*, float*, const float*,
               int64_t, int64_t, int64_t, int64_t, bool, bool);
  void (*sddmm)(const float*, const int32_t*, const int32_t*, int64_t, int64_t, const float*, float*, int64_t,
                int64_t, int64_t, int64_t);
  void (*transpose)(const float*, float*, int64_t, int64_t, int64_t, int64_t, bool, int64_t, int64_t);
  void (*adam)(float*, float*, float*, float*, const int32_t*, int64_t, int64_t, float, float, float, float, float,
               float, float);
  void (*sgd)(float*, float*, float*, const int32_t*, int64_t, int64_t, float, float, float);
};

#ifdef LTH_SP_X86
namespace avx512 {
#define LTH_SP_TARGET __attribute__((target("avx512f,avx2,fma")))
#include "sparse_impl.h"
#undef LTH_SP_TARGET
}  // namespace avx512
namespace avx2 {
#define LTH_SP_TARGET __attribute__((target("avx2,fma")))
#include "sparse_impl.h"
#undef LTH_SP_TARGET
}  // namespace avx2
#endif
namespace scalar {
#define LTH_SP_TARGET
#include "sparse_impl.h"
#undef LTH_SP_TARGET
}  // namespace scalar

const SparseKernels* gS = &scalar::kTable;

#ifdef LTH_SP_X86
constexpr unsigned kFtzDaz = 0x8040;
struct FtzScope {
  unsigned saved;
  FtzScope() : saved(_mm_getcsr()) {
    if ((saved & kFtzDaz) != kFtzDaz) _mm_setcsr(saved | kFtzDaz);
  }
  ~FtzScope() {
    if ((saved & kFtzDaz) != kFtzDaz) _mm_setcsr(saved);
  }
};
#else
struct FtzScope {};
#endif

// Multiply-adds from which a sparse product is split across the pool.
constexpr double kParallelMinWork = 300000.0;

// Runs fn(ctx, r0, r1) over the rows of a compressed index, in parts of about equal
// nonzero counts on the pool when the product has at least kParallelMinWork
// multiply-adds, else on the calling thread.
void for_rows(const int32_t* ptr, int64_t rows, int64_t n, void (*fn)(const void*, int64_t, int64_t), const void* ctx) {
  const int threads = lth::thread_count();
  const int64_t nnz = ptr[rows];
  if (threads < 2 || (double)nnz * (double)n < kParallelMinWork || rows < 2) {
    fn(ctx, 0, rows);
    return;
  }
  struct Job {
    const int32_t* ptr;
    int64_t rows, nnz;
    int parts;
    void (*fn)(const void*, int64_t, int64_t);
    const void* ctx;
  } job{ptr, rows, nnz, threads * 2, fn, ctx};
  // Part p: the rows whose first nonzero lies in [p*nnz/parts, (p+1)*nnz/parts).
  lth::run_parts(job.parts, [](void* c, int part) {
    const Job& j = *static_cast<const Job*>(c);
    auto bound = [&](int p) -> int64_t {
      if (p == j.parts) return j.rows;
      const int64_t target = j.nnz * p / j.parts;
      int64_t lo = 0, hi = j.rows;  // first row r with ptr[r] >= target
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (j.ptr[mid] < target) lo = mid + 1;
        else hi = mid;
      }
      return p == 0 ? 0 : lo;
    };
    const int64_t r0 = bound(part), r1 = bound(part + 1);
    if (r0 < r1) j.fn(j.ctx, r0, r1);
  }, &job);
}

// ------------------------------------------------------------------ argument checks

class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* fn, size_t expected) : env_(env), fn_(fn) {
    argc_ = kMax;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) fail(false, "cannot read the arguments");
    else if (argc_ < expected) fail(false, "expected %zu arguments, got %zu", expected, argc_);
  }
  bool ok() const { return ok_; }

  void* array(size_t i, const char* name, napi_typedarray_type want, const char* wantName, size_t* len,
              bool nullable = false, bool* present = nullptr) {
    *len = 0;
    if (present) *present = false;
    if (!ok_) return nullptr;
    napi_valuetype vt;
    napi_typeof(env_, argv_[i], &vt);
    if (nullable && (vt == napi_null || vt == napi_undefined)) return nullptr;
    bool is = false;
    napi_is_typedarray(env_, argv_[i], &is);
    napi_typedarray_type t;
    size_t length = 0;
    void* data = nullptr;
    if (!is || napi_get_typedarray_info(env_, argv_[i], &t, &length, &data, nullptr, nullptr) != napi_ok || t != want) {
      fail(false, "%s must be a %s%s", name, wantName, nullable ? " or null" : "");
      return nullptr;
    }
    if (present) *present = true;
    *len = length;
    return data;
  }
  float* f32(size_t i, const char* name, size_t* len) {
    return static_cast<float*>(array(i, name, napi_float32_array, "Float32Array", len));
  }
  float* f32OrNull(size_t i, const char* name, size_t* len, bool* present) {
    return static_cast<float*>(array(i, name, napi_float32_array, "Float32Array", len, true, present));
  }
  int32_t* i32(size_t i, const char* name, size_t* len) {
    return static_cast<int32_t*>(array(i, name, napi_int32_array, "Int32Array", len));
  }
  double number(size_t i, const char* name) {
    if (!ok_) return 0;
    napi_valuetype vt;
    napi_typeof(env_, argv_[i], &vt);
    if (vt != napi_number) {
      fail(false, "%s must be a number", name);
      return 0;
    }
    double d = 0;
    napi_get_value_double(env_, argv_[i], &d);
    return d;
  }
  // An integer from 0 to 2^31 - 1 (indices are int32).
  int64_t dim(size_t i, const char* name) {
    double d = number(i, name);
    if (ok_ && !(d >= 0 && d <= 2147483647.0 && std::floor(d) == d)) fail(true, "%s must be a non-negative integer below 2^31, got %.17g", name, d);
    return ok_ ? (int64_t)d : 0;
  }
  bool flag(size_t i, const char* name) {
    if (!ok_) return false;
    bool b = false;
    if (napi_get_value_bool(env_, argv_[i], &b) != napi_ok) fail(false, "%s must be a boolean", name);
    return b;
  }
  void need(const char* name, size_t len, int64_t needed, const char* what) {
    if (ok_ && (int64_t)len < needed) fail(true, "%s has %zu elements, needs %s = %lld", name, len, what, (long long)needed);
  }
  __attribute__((format(printf, 3, 4))) void fail(bool range, const char* fmt, ...) {
    if (!ok_) return;
    ok_ = false;
    char msg[512];
    int off = std::snprintf(msg, sizeof msg, "%s: ", fn_);
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg + off, sizeof msg - off, fmt, ap);
    va_end(ap);
    if (range) napi_throw_range_error(env_, nullptr, msg);
    else napi_throw_type_error(env_, nullptr, msg);
  }

 private:
  static constexpr size_t kMax = 16;
  napi_env env_;
  const char* fn_;
  size_t argc_ = 0;
  napi_value argv_[kMax] = {};
  bool ok_ = true;
};

napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

bool overlaps(const void* p, size_t pn, const void* q, size_t qn) {
  if (!p || !q || !pn || !qn) return false;
  auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + qn && b < a + pn;
}

// Checks a compressed index of `rows` rows: ptr[0] = 0, ptr non-decreasing, ptr[rows] <=
// idx length, every idx in [0, 2^31). Returns the largest index (-1 if none).
int64_t check_index(Args& a, const int32_t* ptr, size_t lptr, const int32_t* idx, size_t lidx, int64_t rows) {
  a.need("ptr", lptr, rows + 1, "rows+1");
  if (!a.ok()) return -1;
  if (ptr[0] != 0) a.fail(true, "ptr[0] must be 0, got %d", ptr[0]);
  for (int64_t r = 0; r < rows && a.ok(); r++)
    if (ptr[r + 1] < ptr[r]) a.fail(true, "ptr must be non-decreasing: ptr[%lld] = %d < ptr[%lld] = %d", (long long)(r + 1), ptr[r + 1], (long long)r, ptr[r]);
  if (!a.ok()) return -1;
  a.need("idx", lidx, ptr[rows], "ptr[rows]");
  int64_t mx = -1;
  for (int32_t k = 0; a.ok() && k < ptr[rows]; k++) {
    if (idx[k] < 0) a.fail(true, "idx[%d] = %d is negative", k, idx[k]);
    else if (idx[k] > mx) mx = idx[k];
  }
  return mx;
}

// ------------------------------------------------------------------ exports

// spmm(w, ptr, idx, rowStride, idxStride, inT, outT, bias, rows, n, ld, accumulate, relu)
napi_value Spmm(napi_env env, napi_callback_info info) {
  Args a(env, info, "spmm", 13);
  size_t lw, lp, li, lin, lout, lb;
  bool hasBias = false;
  const float* w = a.f32(0, "w", &lw);
  const int32_t* ptr = a.i32(1, "ptr", &lp);
  const int32_t* idx = a.i32(2, "idx", &li);
  const int64_t rs = a.dim(3, "rowStride"), is = a.dim(4, "idxStride");
  const float* inT = a.f32(5, "inT", &lin);
  float* outT = a.f32(6, "outT", &lout);
  const float* bias = a.f32OrNull(7, "bias", &lb, &hasBias);
  const int64_t rows = a.dim(8, "rows"), n = a.dim(9, "n"), ld = a.dim(10, "ld");
  const bool acc = a.flag(11, "accumulate"), relu = a.flag(12, "relu");
  if (a.ok() && n > ld) a.fail(true, "n = %lld must be <= ld = %lld", (long long)n, (long long)ld);
  const int64_t mx = check_index(a, ptr, lp, idx, li, rows);
  if (!a.ok()) return nullptr;
  if (rows == 0 || n == 0) return undef(env);
  a.need("outT", lout, (rows - 1) * ld + n, "(rows-1)*ld+n");
  if (hasBias) a.need("bias", lb, rows, "rows");
  if (mx >= 0) {
    a.need("inT", lin, mx * ld + n, "(max idx)*ld+n");
    a.need("w", lw, (rows - 1) * rs + mx * is + 1, "(rows-1)*rowStride+(max idx)*idxStride+1");
  }
  if (a.ok() && overlaps(outT, lout * 4, inT, lin * 4)) a.fail(true, "outT must not share memory with inT");
  if (a.ok() && overlaps(outT, lout * 4, w, lw * 4)) a.fail(true, "outT must not share memory with w");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  struct Ctx {
    const float *w, *inT, *bias;
    const int32_t *ptr, *idx;
    float* outT;
    int64_t rs, is, n, ld;
    bool acc, relu;
  } c{w, inT, hasBias ? bias : nullptr, ptr, idx, outT, rs, is, n, ld, acc, relu};
  for_rows(ptr, rows, n, [](const void* p, int64_t b, int64_t e) {
    const Ctx& c = *static_cast<const Ctx*>(p);
    gS->spmm(c.w, c.ptr, c.idx, c.rs, c.is, c.inT, c.outT, c.bias, b, e, c.n, c.ld, c.acc, c.relu);
  }, &c);
  return undef(env);
}

// sddmm(aT, ptr, idx, rowStride, idxStride, bT, out, rows, n, ld)
napi_value Sddmm(napi_env env, napi_callback_info info) {
  Args a(env, info, "sddmm", 10);
  size_t la, lp, li, lb, lo;
  const float* aT = a.f32(0, "aT", &la);
  const int32_t* ptr = a.i32(1, "ptr", &lp);
  const int32_t* idx = a.i32(2, "idx", &li);
  const int64_t rs = a.dim(3, "rowStride"), is = a.dim(4, "idxStride");
  const float* bT = a.f32(5, "bT", &lb);
  float* out = a.f32(6, "out", &lo);
  const int64_t rows = a.dim(7, "rows"), n = a.dim(8, "n"), ld = a.dim(9, "ld");
  if (a.ok() && n > ld) a.fail(true, "n = %lld must be <= ld = %lld", (long long)n, (long long)ld);
  const int64_t mx = check_index(a, ptr, lp, idx, li, rows);
  if (!a.ok()) return nullptr;
  if (rows == 0 || mx < 0) return undef(env);
  a.need("aT", la, (rows - 1) * ld + n, "(rows-1)*ld+n");
  a.need("bT", lb, mx * ld + n, "(max idx)*ld+n");
  a.need("out", lo, (rows - 1) * rs + mx * is + 1, "(rows-1)*rowStride+(max idx)*idxStride+1");
  if (a.ok() && (overlaps(out, lo * 4, aT, la * 4) || overlaps(out, lo * 4, bT, lb * 4)))
    a.fail(true, "out must not share memory with aT or bT");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  struct Ctx {
    const float *aT, *bT;
    const int32_t *ptr, *idx;
    float* out;
    int64_t rs, is, n, ld;
  } c{aT, bT, ptr, idx, out, rs, is, n, ld};
  for_rows(ptr, rows, n, [](const void* p, int64_t b, int64_t e) {
    const Ctx& c = *static_cast<const Ctx*>(p);
    gS->sddmm(c.aT, c.ptr, c.idx, c.rs, c.is, c.bT, c.out, b, e, c.n, c.ld);
  }, &c);
  return undef(env);
}

// transpose(x, out, rows, cols, ldx, ldo, accumulate)
napi_value Transpose(napi_env env, napi_callback_info info) {
  Args a(env, info, "transpose", 7);
  size_t lx, lo;
  const float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  const int64_t rows = a.dim(2, "rows"), cols = a.dim(3, "cols"), ldx = a.dim(4, "ldx"), ldo = a.dim(5, "ldo");
  const bool acc = a.flag(6, "accumulate");
  if (a.ok() && ldx < cols) a.fail(true, "ldx = %lld must be >= cols = %lld", (long long)ldx, (long long)cols);
  if (a.ok() && ldo < rows) a.fail(true, "ldo = %lld must be >= rows = %lld", (long long)ldo, (long long)rows);
  a.need("x", lx, rows * ldx, "rows*ldx");
  a.need("out", lo, cols * ldo, "cols*ldo");
  if (a.ok() && overlaps(out, lo * 4, x, lx * 4)) a.fail(true, "out must not share memory with x");
  if (!a.ok()) return nullptr;
  if (cols == 0) return undef(env);
  FtzScope ftz;
  gS->transpose(x, out, rows, cols, ldx, ldo, acc, 0, cols);
  return undef(env);
}

// adamSparse(param, grad, m, v, idx, nnz, lr, beta1, beta2, eps, step)
napi_value AdamSparse(napi_env env, napi_callback_info info) {
  Args a(env, info, "adamSparse", 11);
  size_t lp, lg, lm, lv, li;
  float* p = a.f32(0, "param", &lp);
  float* g = a.f32(1, "grad", &lg);
  float* m = a.f32(2, "m", &lm);
  float* v = a.f32(3, "v", &lv);
  const int32_t* idx = a.i32(4, "idx", &li);
  const int64_t nnz = a.dim(5, "nnz");
  const double lr = a.number(6, "lr"), beta1 = a.number(7, "beta1"), beta2 = a.number(8, "beta2");
  const double eps = a.number(9, "eps"), step = a.number(10, "step");
  a.need("idx", li, nnz, "nnz");
  if (!a.ok()) return nullptr;
  const size_t n = lp < lg ? (lp < lm ? (lp < lv ? lp : lv) : (lm < lv ? lm : lv)) : (lg < lm ? (lg < lv ? lg : lv) : (lm < lv ? lm : lv));
  for (int64_t k = 0; k < nnz; k++)
    if (idx[k] < 0 || (size_t)idx[k] >= n) {
      a.fail(true, "idx[%lld] = %d is outside param/grad/m/v (%zu elements)", (long long)k, idx[k], n);
      return nullptr;
    }
  if (!nnz) return undef(env);
  const double stepSize = lr / (1 - std::pow(beta1, step));
  const double invBc2 = 1 / std::sqrt(1 - std::pow(beta2, step));
  FtzScope ftz;
  gS->adam(p, g, m, v, idx, 0, nnz, (float)beta1, (float)beta2, (float)(1 - beta1), (float)(1 - beta2),
           (float)stepSize, (float)invBc2, (float)eps);
  return undef(env);
}

// sgdSparse(param, grad, buf, idx, nnz, lr, momentum, weightDecay)
napi_value SgdSparse(napi_env env, napi_callback_info info) {
  Args a(env, info, "sgdSparse", 8);
  size_t lp, lg, lb, li;
  float* p = a.f32(0, "param", &lp);
  float* g = a.f32(1, "grad", &lg);
  float* buf = a.f32(2, "buf", &lb);
  const int32_t* idx = a.i32(3, "idx", &li);
  const int64_t nnz = a.dim(4, "nnz");
  const double lr = a.number(5, "lr"), momentum = a.number(6, "momentum"), wd = a.number(7, "weightDecay");
  a.need("idx", li, nnz, "nnz");
  if (!a.ok()) return nullptr;
  const size_t n = lp < lg ? (lp < lb ? lp : lb) : (lg < lb ? lg : lb);
  for (int64_t k = 0; k < nnz; k++)
    if (idx[k] < 0 || (size_t)idx[k] >= n) {
      a.fail(true, "idx[%lld] = %d is outside param/grad/buf (%zu elements)", (long long)k, idx[k], n);
      return nullptr;
    }
  if (!nnz) return undef(env);
  FtzScope ftz;
  gS->sgd(p, g, buf, idx, 0, nnz, (float)lr, (float)momentum, (float)wd);
  return undef(env);
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
      {"spmm", nullptr, Spmm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sddmm", nullptr, Sddmm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"transpose", nullptr, Transpose, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adamSparse", nullptr, AdamSparse, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sgdSparse", nullptr, SgdSparse, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
