// conv.cc: the NCHW convolution kernels of the native backend and their Node-API
// bindings: im2col, col2im, channelBiasAct, sumChannels, maxPool2d and
// maxPool2dBackward (the Backend methods of the same names, same argument order;
// src/backend/backend.ts documents them and src/backend/reference.ts is the oracle).
//
// Convolution itself is im2col + the addon's GEMM (src/tensor/conv.ts); these kernels
// are memory-bound copies, adds and comparisons, compiled for the baseline ISA (the
// compiler vectorises the contiguous stride-1 loops). Big calls are split over the
// addon's thread pool (lth::run_parts in lth_native.cc) by whole rows, channels or
// planes: every output element is computed by one part, in a fixed order, so results
// do not depend on the thread count.
//
// Arguments are checked here as in lth_native.cc: a wrong type throws a TypeError, a
// too-short array or an impossible geometry a RangeError naming the function and the
// argument.

#include <node_api.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_CONV_X86 1
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "pool.h"

namespace lth {
bool register_conv(napi_env env, napi_value exports);
}  // namespace lth

#include "ftz.h"

namespace {

// ------------------------------------------------------------------ denormals

using lth::FtzScope;

// ------------------------------------------------------------------ parallel loop

// Below this many elements touched a kernel runs on the calling thread alone.
constexpr int64_t kParallelMin = 1 << 15;

// Runs f(b, e) over [0, units) in contiguous parts (split on the pool when the call
// touches at least kParallelMin elements and there are at least 2 units).
template <class F>
void parallel_units(int64_t units, int64_t elements, const F& f) {
  const int threads = lth::thread_count();
  if (threads <= 1 || units < 2 || elements < kParallelMin) {
    f((int64_t)0, units);
    return;
  }
  struct Job {
    const F* f;
    int64_t units;
    int parts;
  } job{&f, units, (int)(units < 2 * threads ? units : 2 * threads)};
  lth::run_parts(
      job.parts,
      [](void* ctx, int part) {
        const Job& j = *static_cast<const Job*>(ctx);
        const int64_t b = j.units * part / j.parts, e = j.units * (part + 1) / j.parts;
        if (b < e) (*j.f)(b, e);
      },
      &job);
}

// ------------------------------------------------------------------ kernels

struct Geom {
  int64_t c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// The output columns ox whose input column ox*sw - pw + j lies inside [0, w): [lo, hi).
inline void valid_cols(const Geom& g, int64_t j, int64_t* lo, int64_t* hi) {
  const int64_t a = g.pw - j;  // input column of ox is ox*sw - a
  int64_t l = a <= 0 ? 0 : (a + g.sw - 1) / g.sw;
  int64_t u = (g.w - 1 + a) < 0 ? 0 : (g.w - 1 + a) / g.sw + 1;
  if (u > g.ow) u = g.ow;
  if (l > u) l = u;
  *lo = l;
  *hi = u;
}

// Rows [r0, r1) of col (row r = (ch*kh + i)*kw + j).
void im2col_rows(const float* __restrict x, float* __restrict col, const Geom& g, int64_t r0, int64_t r1) {
  const int64_t khw = g.kh * g.kw;
  for (int64_t r = r0; r < r1; r++) {
    const int64_t ch = r / khw, i = (r / g.kw) % g.kh, j = r % g.kw;
    int64_t lo, hi;
    valid_cols(g, j, &lo, &hi);
    const int64_t off = j - g.pw;  // input column = ox*sw + off
    float* dst = col + r * g.oh * g.ow;
    for (int64_t oy = 0; oy < g.oh; oy++, dst += g.ow) {
      const int64_t y = oy * g.sh - g.ph + i;
      if (y < 0 || y >= g.h) {
        std::memset(dst, 0, (size_t)g.ow * sizeof(float));
        continue;
      }
      const float* src = x + (ch * g.h + y) * g.w;
      for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0;
      if (g.sw == 1) {
        const float* s = src + off;
        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = s[ox];
      } else {
        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = src[ox * g.sw + off];
      }
      for (int64_t ox = hi; ox < g.ow; ox++) dst[ox] = 0;
    }
  }
}

// Channels [c0, c1) of x += col2im(col): each channel's plane only receives from its
// own kh*kw rows of col, in a fixed order.
void col2im_channels(const float* __restrict col, float* __restrict x, const Geom& g, int64_t c0, int64_t c1) {
  for (int64_t ch = c0; ch < c1; ch++) {
    float* plane = x + ch * g.h * g.w;
    for (int64_t i = 0; i < g.kh; i++) {
      for (int64_t j = 0; j < g.kw; j++) {
        const int64_t r = (ch * g.kh + i) * g.kw + j;
        int64_t lo, hi;
        valid_cols(g, j, &lo, &hi);
        const int64_t off = j - g.pw;
        const float* src = col + r * g.oh * g.ow;
        for (int64_t oy = 0; oy < g.oh; oy++, src += g.ow) {
          const int64_t y = oy * g.sh - g.ph + i;
          if (y < 0 || y >= g.h) continue;
          float* __restrict dst = plane + y * g.w + off;
          if (g.sw == 1) {
            for (int64_t ox = lo; ox < hi; ox++) dst[ox] += src[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ox++) dst[ox * g.sw] += src[ox];
          }
        }
      }
    }
  }
}

// The first maximum of a window in row-major order; a NaN beats everything (the first NaN).
inline bool better(float v, float best) { return v > best || (v != v && best == best); }

#ifdef __SSE2__
// 2x2 stride-2 pooling, 4 windows at a time (SSE2 is the x86-64 baseline). a, b are the
// top-left/top-right entries of 4 windows, c, d the bottom ones; t_k is "entry k beats the
// best so far" with better()'s rule (greater, or a NaN over a non-NaN).
inline void deinterleave(const float* p, __m128* even, __m128* odd) {
  const __m128 lo = _mm_loadu_ps(p), hi = _mm_loadu_ps(p + 4);
  *even = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  *odd = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}
inline __m128 beats(__m128 v, __m128 best) {
  return _mm_or_ps(_mm_cmpgt_ps(v, best), _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(best, best)));
}
inline __m128 select(__m128 mask, __m128 yes, __m128 no) { return _mm_or_ps(_mm_and_ps(mask, yes), _mm_andnot_ps(mask, no)); }
#endif

// Planes [p0, p1) of max pooling, k x k windows, stride s.
void maxpool_planes(const float* __restrict x, float* __restrict out, int64_t h, int64_t w, int64_t k, int64_t s,
                    int64_t oh, int64_t ow, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    const float* plane = x + p * h * w;
    float* o = out + p * oh * ow;
    if (k == 2 && s == 2) {
      for (int64_t oy = 0; oy < oh; oy++) {
        const float* r0 = plane + 2 * oy * w;
        const float* r1 = r0 + w;
        float* dst = o + oy * ow;
        int64_t ox = 0;
#ifdef __SSE2__
        for (; ox + 4 <= ow; ox += 4) {
          __m128 a, b, c, d;
          deinterleave(r0 + 2 * ox, &a, &b);
          deinterleave(r1 + 2 * ox, &c, &d);
          __m128 best = select(beats(b, a), b, a);
          best = select(beats(c, best), c, best);
          best = select(beats(d, best), d, best);
          _mm_storeu_ps(dst + ox, best);
        }
#endif
        for (; ox < ow; ox++) {
          float best = r0[2 * ox];
          const float b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
          if (better(b, best)) best = b;
          if (better(c, best)) best = c;
          if (better(d, best)) best = d;
          dst[ox] = best;
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < oh; oy++) {
      for (int64_t ox = 0; ox < ow; ox++) {
        const float* win = plane + oy * s * w + ox * s;
        float best = win[0];
        for (int64_t i = 0; i < k; i++)
          for (int64_t j = 0; j < k; j++)
            if (better(win[i * w + j], best)) best = win[i * w + j];
        o[oy * ow + ox] = best;
      }
    }
  }
}

// Planes [p0, p1) of gradIn[argmax] += gradOut.
void maxpool_backward_planes(const float* __restrict x, const float* __restrict gy, float* __restrict gx, int64_t h,
                             int64_t w, int64_t k, int64_t s, int64_t oh, int64_t ow, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    const float* plane = x + p * h * w;
    const float* g = gy + p * oh * ow;
    float* gi = gx + p * h * w;
    if (k == 2 && s == 2) {
      // Each input entry belongs to one window: add g or 0 to all four, with no
      // data-dependent addressing (the compiler vectorises this like the forward).
      for (int64_t oy = 0; oy < oh; oy++) {
        const float* r0 = plane + 2 * oy * w;
        const float* r1 = r0 + w;
        float* __restrict d0 = gi + 2 * oy * w;
        float* __restrict d1 = d0 + w;
        const float* go = g + oy * ow;
        int64_t ox = 0;
#ifdef __SSE2__
        for (; ox + 4 <= ow; ox += 4) {
          __m128 a, b, c, d;
          deinterleave(r0 + 2 * ox, &a, &b);
          deinterleave(r1 + 2 * ox, &c, &d);
          const __m128 t1 = beats(b, a);
          __m128 best = select(t1, b, a);
          const __m128 t2 = beats(c, best);
          best = select(t2, c, best);
          const __m128 t3 = beats(d, best);
          const __m128 gv = _mm_loadu_ps(go + ox);
          // The winner of each window: the last entry that beat the best so far.
          const __m128 gd = _mm_and_ps(t3, gv);
          const __m128 gc = _mm_andnot_ps(t3, _mm_and_ps(t2, gv));
          const __m128 gb = _mm_andnot_ps(_mm_or_ps(t2, t3), _mm_and_ps(t1, gv));
          const __m128 ga = _mm_andnot_ps(_mm_or_ps(t1, _mm_or_ps(t2, t3)), gv);
          float* p0 = d0 + 2 * ox;
          float* p1 = d1 + 2 * ox;
          _mm_storeu_ps(p0, _mm_add_ps(_mm_loadu_ps(p0), _mm_unpacklo_ps(ga, gb)));
          _mm_storeu_ps(p0 + 4, _mm_add_ps(_mm_loadu_ps(p0 + 4), _mm_unpackhi_ps(ga, gb)));
          _mm_storeu_ps(p1, _mm_add_ps(_mm_loadu_ps(p1), _mm_unpacklo_ps(gc, gd)));
          _mm_storeu_ps(p1 + 4, _mm_add_ps(_mm_loadu_ps(p1 + 4), _mm_unpackhi_ps(gc, gd)));
        }
#endif
        for (; ox < ow; ox++) {
          const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
          const float gv = go[ox];
          // which = index of the first maximum (a NaN counts as the maximum).
          int which = 0;
          float best = a;
          if (better(b, best)) { which = 1; best = b; }
          if (better(c, best)) { which = 2; best = c; }
          if (better(d, best)) which = 3;
          d0[2 * ox] += which == 0 ? gv : 0.0f;
          d0[2 * ox + 1] += which == 1 ? gv : 0.0f;
          d1[2 * ox] += which == 2 ? gv : 0.0f;
          d1[2 * ox + 1] += which == 3 ? gv : 0.0f;
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < oh; oy++) {
      for (int64_t ox = 0; ox < ow; ox++) {
        const int64_t a = oy * s * w + ox * s;
        int64_t best = a;
        for (int64_t i = 0; i < k; i++)
          for (int64_t j = 0; j < k; j++)
            if (better(plane[a + i * w + j], plane[best])) best = a + i * w + j;
        gi[best] += g[oy * ow + ox];
      }
    }
  }
}

// ------------------------------------------------------------------ argument checks

#include "napi_args.h"

using u128 = unsigned __int128;


// Reads (first, second, channels, height, width, kh, kw, strideH, strideW, padH, padW)
// of im2col/col2im and checks the geometry.
bool conv_args(Args& a, Geom* g) {
  g->c = a.dim(2, "channels");
  g->h = a.dim(3, "height");
  g->w = a.dim(4, "width");
  g->kh = a.dim(5, "kh", 1);
  g->kw = a.dim(6, "kw", 1);
  g->sh = a.dim(7, "strideH", 1);
  g->sw = a.dim(8, "strideW", 1);
  g->ph = a.dim(9, "padH");
  g->pw = a.dim(10, "padW");
  if (!a.ok()) return false;
  if (g->h + 2 * g->ph < g->kh || g->w + 2 * g->pw < g->kw) {
    a.fail(true, "a %lldx%lld kernel with padding %lldx%lld does not fit a %lldx%lld image", (long long)g->kh,
           (long long)g->kw, (long long)g->ph, (long long)g->pw, (long long)g->h, (long long)g->w);
    return false;
  }
  g->oh = (g->h + 2 * g->ph - g->kh) / g->sh + 1;
  g->ow = (g->w + 2 * g->pw - g->kw) / g->sw + 1;
  return true;
}

// ------------------------------------------------------------------ exports

napi_value Im2col(napi_env env, napi_callback_info info) {
  Args a(env, info, "im2col", 11);
  size_t lx, lc;
  const float* x = a.f32(0, "x", &lx);
  float* col = a.f32(1, "col", &lc);
  Geom g;
  if (!conv_args(a, &g)) return nullptr;
  a.need("x", lx, (u128)g.c * g.h * g.w, "channels*height*width");
  a.need("col", lc, (u128)g.c * g.kh * g.kw * g.oh * g.ow, "channels*kh*kw*outH*outW");
  if (!a.ok()) return nullptr;
  const int64_t rows = g.c * g.kh * g.kw;
  if (rows > 0 && g.oh > 0 && g.ow > 0) {
    FtzScope ftz;
    parallel_units(rows, rows * g.oh * g.ow, [&](int64_t b, int64_t e) { im2col_rows(x, col, g, b, e); });
  }
  return undefined_value(env);
}

napi_value Col2im(napi_env env, napi_callback_info info) {
  Args a(env, info, "col2im", 11);
  size_t lc, lx;
  const float* col = a.f32(0, "col", &lc);
  float* x = a.f32(1, "x", &lx);
  Geom g;
  if (!conv_args(a, &g)) return nullptr;
  a.need("col", lc, (u128)g.c * g.kh * g.kw * g.oh * g.ow, "channels*kh*kw*outH*outW");
  a.need("x", lx, (u128)g.c * g.h * g.w, "channels*height*width");
  if (!a.ok()) return nullptr;
  if (g.c > 0 && g.h > 0 && g.w > 0) {
    FtzScope ftz;
    parallel_units(g.c, g.c * g.kh * g.kw * g.oh * g.ow, [&](int64_t b, int64_t e) { col2im_channels(col, x, g, b, e); });
  }
  return undefined_value(env);
}

napi_value ChannelBiasAct(napi_env env, napi_callback_info info) {
  Args a(env, info, "channelBiasAct", 7);
  size_t lx, lb, lo;
  const float* x = a.f32(0, "x", &lx);
  const float* bias = a.f32(1, "bias", &lb);
  float* out = a.f32(2, "out", &lo);
  const int64_t n = a.dim(3, "n"), ch = a.dim(4, "channels"), size = a.dim(5, "size");
  const bool relu = a.flag(6, "relu");
  a.need("x", lx, (u128)n * ch * size, "n*channels*size");
  a.need("bias", lb, (u128)ch, "channels");
  a.need("out", lo, (u128)n * ch * size, "n*channels*size");
  if (!a.ok()) return nullptr;
  if (n && ch && size) {
    FtzScope ftz;
    parallel_units(n * ch, n * ch * size, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; p++) {
        const float bv = bias[p % ch];
        const float* xi = x + p * size;
        float* oi = out + p * size;
        if (relu) {
          for (int64_t k = 0; k < size; k++) {
            const float v = xi[k] + bv;
            oi[k] = v < 0 ? 0.0f : v;  // NaN stays NaN
          }
        } else {
          for (int64_t k = 0; k < size; k++) oi[k] = xi[k] + bv;
        }
      }
    });
  }
  return undefined_value(env);
}

napi_value SumChannels(napi_env env, napi_callback_info info) {
  Args a(env, info, "sumChannels", 6);
  size_t lx, lo;
  const float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  const int64_t n = a.dim(2, "n"), ch = a.dim(3, "channels"), size = a.dim(4, "size");
  const bool acc = a.flag(5, "accumulate");
  a.need("x", lx, (u128)n * ch * size, "n*channels*size");
  a.need("out", lo, (u128)ch, "channels");
  if (!a.ok()) return nullptr;
  if (ch) {
    FtzScope ftz;
    parallel_units(ch, n * ch * size, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; c++) {
        // Double accumulators, 8 lanes in a fixed order.
        double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t i = 0; i < n; i++) {
          const float* p = x + (i * ch + c) * size;
          int64_t k = 0;
          for (; k + 8 <= size; k += 8)
            for (int l = 0; l < 8; l++) lane[l] += (double)p[k + l];
          for (; k < size; k++) lane[k & 7] += (double)p[k];
        }
        const double s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        out[c] = acc ? (float)((double)out[c] + s) : (float)s;
      }
    });
  }
  return undefined_value(env);
}

// Reads (x, ..., planes, height, width, k, stride) of the pooling kernels; false and a
// thrown error on a bad geometry.
bool pool_args(Args& a, size_t first, int64_t* planes, int64_t* h, int64_t* w, int64_t* k, int64_t* s, int64_t* oh,
               int64_t* ow) {
  *planes = a.dim(first, "planes");
  *h = a.dim(first + 1, "height");
  *w = a.dim(first + 2, "width");
  *k = a.dim(first + 3, "k", 1);
  *s = a.dim(first + 4, "stride", 1);
  if (!a.ok()) return false;
  if (*h < *k || *w < *k) {
    a.fail(true, "a %lldx%lld window does not fit a %lldx%lld plane", (long long)*k, (long long)*k, (long long)*h,
           (long long)*w);
    return false;
  }
  *oh = (*h - *k) / *s + 1;
  *ow = (*w - *k) / *s + 1;
  return true;
}

napi_value MaxPool2d(napi_env env, napi_callback_info info) {
  Args a(env, info, "maxPool2d", 7);
  size_t lx, lo;
  const float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  int64_t planes, h, w, k, s, oh, ow;
  if (!pool_args(a, 2, &planes, &h, &w, &k, &s, &oh, &ow)) return nullptr;
  a.need("x", lx, (u128)planes * h * w, "planes*height*width");
  a.need("out", lo, (u128)planes * oh * ow, "planes*outH*outW");
  if (!a.ok()) return nullptr;
  if (planes) {
    FtzScope ftz;
    parallel_units(planes, planes * h * w,
                   [&](int64_t b, int64_t e) { maxpool_planes(x, out, h, w, k, s, oh, ow, b, e); });
  }
  return undefined_value(env);
}

napi_value MaxPool2dBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "maxPool2dBackward", 8);
  size_t lx, lg, li;
  const float* x = a.f32(0, "x", &lx);
  const float* gy = a.f32(1, "gradOut", &lg);
  float* gx = a.f32(2, "gradIn", &li);
  int64_t planes, h, w, k, s, oh, ow;
  if (!pool_args(a, 3, &planes, &h, &w, &k, &s, &oh, &ow)) return nullptr;
  a.need("x", lx, (u128)planes * h * w, "planes*height*width");
  a.need("gradOut", lg, (u128)planes * oh * ow, "planes*outH*outW");
  a.need("gradIn", li, (u128)planes * h * w, "planes*height*width");
  if (!a.ok()) return nullptr;
  if (planes) {
    FtzScope ftz;
    parallel_units(planes, planes * h * w,
                   [&](int64_t b, int64_t e) { maxpool_backward_planes(x, gy, gx, h, w, k, s, oh, ow, b, e); });
  }
  return undefined_value(env);
}

}  // namespace

namespace lth {

// Adds the conv kernels to the addon's exports; false (with a pending exception) on failure.
bool register_conv(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"im2col", nullptr, Im2col, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"col2im", nullptr, Col2im, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"channelBiasAct", nullptr, ChannelBiasAct, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumChannels", nullptr, SumChannels, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPool2d", nullptr, MaxPool2d, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPool2dBackward", nullptr, MaxPool2dBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}

}  // namespace lth
