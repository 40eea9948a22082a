// conv.cc: the NCHW convolution kernels of the native backend and their Node-API
// bindings: im2col, col2im, channelBiasAct, sumChannels, channelBiasActBackward, maxPool2d,
// maxPool2dBackward and maxPool2dActBackward (the Backend methods of the same names, same argument order;
// src/backend/backend.ts documents them and src/backend/reference.ts is the oracle).
//
// Convolution itself is im2col + the addon's GEMM (src/tensor/conv.ts); these kernels
// are memory-bound copies, adds and comparisons, compiled for the baseline ISA (the
// compiler vectorises the contiguous stride-1 loops), except channelBiasAct, which runs
// the SIMD table's rowBiasAct (conv2d's epilogue) plane by plane. Big calls are split over the
// addon's thread pool (lth::run_parts, pool.h) by whole rows, channels or
// planes: every output element is computed by one part, in a fixed order, so results
// do not depend on the thread count.
//
// Arguments are read by the table-driven reader (napi_args.h): a wrong type throws a
// TypeError, a too-short array or an impossible geometry a RangeError naming the function
// and the argument.

#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LTH_CONV_X86 1
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "im2col.h"
#include "napi_args.h"
#include "parallel.h"

namespace {

// ------------------------------------------------------------------ denormals

using lth::FtzScope;

using lth::parallel_units;

// ------------------------------------------------------------------ kernels

using Geom = lth::ConvGeom;

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

// dst[ox] = s[2·ox] for ox in [lo, hi), where s[k] may be read for k < len (the rest of the
// input row): the stride-2 columns of im2col. Four outputs from two loads and a shuffle.
inline void copy_stride2(const float* s, float* dst, int64_t lo, int64_t hi, int64_t len) {
  int64_t ox = lo;
#ifdef __SSE2__
  for (; ox + 4 <= hi && 2 * ox + 8 <= len; ox += 4) {
    const __m128 a = _mm_loadu_ps(s + 2 * ox), b = _mm_loadu_ps(s + 2 * ox + 4);
    _mm_storeu_ps(dst + ox, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  }
#endif
  for (; ox < hi; ox++) dst[ox] = s[2 * ox];
}

// d[2·ox] += src[ox] for ox in [lo, hi), where d[k] may be touched for k < len: the
// stride-2 columns of col2im. The odd entries in between get -0.0 added, which leaves
// every value (signed zeros and NaN included) as it is.
inline void add_stride2(const float* src, float* d, int64_t lo, int64_t hi, int64_t len) {
  int64_t ox = lo;
#ifdef __SSE2__
  const __m128 nz = _mm_set1_ps(-0.0f);
  for (; ox + 4 <= hi && 2 * ox + 8 <= len; ox += 4) {
    const __m128 v = _mm_loadu_ps(src + ox);
    _mm_storeu_ps(d + 2 * ox, _mm_add_ps(_mm_loadu_ps(d + 2 * ox), _mm_unpacklo_ps(v, nz)));
    _mm_storeu_ps(d + 2 * ox + 4, _mm_add_ps(_mm_loadu_ps(d + 2 * ox + 4), _mm_unpackhi_ps(v, nz)));
  }
#endif
  for (; ox < hi; ox++) d[2 * ox] += src[ox];
}

// Whether a geometry's windows are 3 wide with stride 2 and padding 1 across (the stride-2
// 3x3 convolutions of ResNets): then a window row's three column rows j = 0, 1, 2 read
// columns 2·ox - 1, 2·ox and 2·ox + 1 of one input row, and im2col and col2im take them
// together, one pass over the input row for the three.
inline bool three_wide_stride2(const Geom& g) { return g.kw == 3 && g.sw == 2 && g.pw == 1; }

// d0, d1, d2[ox] = s[2·ox - 1], s[2·ox], s[2·ox + 1] for ox < ow (0 outside [0, w)): the
// even and odd entries of four outputs' columns from two loads, the first row's the odd
// ones a lane later.
inline void im2col_three(const float* __restrict s, int64_t w, int64_t ow, float* __restrict d0, float* __restrict d1,
                         float* __restrict d2) {
  int64_t ox = 0;
#ifdef __SSE2__
  __m128 prev = _mm_setzero_ps();  // lane 3: column 2·ox - 1
  for (; ox + 4 <= ow && 2 * ox + 8 <= w; ox += 4) {
    const __m128 a = _mm_loadu_ps(s + 2 * ox), b = _mm_loadu_ps(s + 2 * ox + 4);
    const __m128 ev = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), od = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm_storeu_ps(d1 + ox, ev);
    _mm_storeu_ps(d2 + ox, od);
    _mm_storeu_ps(d0 + ox, _mm_move_ss(_mm_shuffle_ps(od, od, _MM_SHUFFLE(2, 1, 0, 0)),
                                       _mm_shuffle_ps(prev, prev, _MM_SHUFFLE(3, 3, 3, 3))));
    prev = od;
  }
#endif
  for (; ox < ow; ox++) {
    d0[ox] = ox > 0 ? s[2 * ox - 1] : 0.0f;
    d1[ox] = s[2 * ox];
    d2[ox] = 2 * ox + 1 < w ? s[2 * ox + 1] : 0.0f;
  }
}

// x[2·ox - 1] += c0[ox], x[2·ox] += c1[ox], x[2·ox + 1] += c2[ox] for ox < ow, inside [0, w),
// each entry's terms in the order j = 0, 1, 2 (as col2im's loop over j adds them): an odd
// entry gets c0's term, then c2's; adding -0.0 where a lane has no term leaves every value
// as it is.
inline void col2im_three(const float* __restrict c0, const float* __restrict c1, const float* __restrict c2, int64_t w,
                         int64_t ow, float* __restrict x) {
  int64_t ox = 0;
#ifdef __SSE2__
  const __m128 nz = _mm_set1_ps(-0.0f);
  // Entries 2·ox .. 2·ox + 7: the even ones from c1[ox ..], the odd ones from c0[ox + 1 ..]
  // (while it lasts) and c2[ox ..].
  for (; ox + 4 <= ow && 2 * ox + 8 <= w; ox += 4) {
    const __m128 e = _mm_loadu_ps(c1 + ox), o2 = _mm_loadu_ps(c2 + ox);
    const __m128 o0 = ox + 5 <= ow ? _mm_loadu_ps(c0 + ox + 1) : _mm_setr_ps(c0[ox + 1], c0[ox + 2], c0[ox + 3], -0.0f);
    __m128 lo = _mm_add_ps(_mm_loadu_ps(x + 2 * ox), _mm_unpacklo_ps(e, o0));
    __m128 hi = _mm_add_ps(_mm_loadu_ps(x + 2 * ox + 4), _mm_unpackhi_ps(e, o0));
    _mm_storeu_ps(x + 2 * ox, _mm_add_ps(lo, _mm_unpacklo_ps(nz, o2)));
    _mm_storeu_ps(x + 2 * ox + 4, _mm_add_ps(hi, _mm_unpackhi_ps(nz, o2)));
  }
#endif
  // The rest entry by entry.
  for (int64_t k = 2 * ox; k < w; k++) {
    if (k % 2 == 0) {
      if (k / 2 < ow) x[k] += c1[k / 2];
    } else {
      const int64_t o = (k + 1) / 2;  // the output whose c0 column is k; c2's is o - 1
      if (o < ow) x[k] += c0[o];
      if (o - 1 < ow) x[k] += c2[o - 1];
    }
  }
}

}  // namespace

bool lth::conv_geometry(ArgReader& a, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw, ConvGeom* g) {
  if (h + 2 * ph < kh || w + 2 * pw < kw) {
    a.fail(true, "a %lldx%lld kernel with padding %lldx%lld does not fit a %lldx%lld image", (long long)kh, (long long)kw,
           (long long)ph, (long long)pw, (long long)h, (long long)w);
    return false;
  }
  *g = ConvGeom{c, h, w, kh, kw, sh, sw, ph, pw, (h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1};
  return true;
}

void lth::im2col_rows(const float* __restrict x, float* __restrict col, const Geom& g, int64_t r0, int64_t r1) {
  const int64_t khw = g.kh * g.kw, plane = g.oh * g.ow;
  const bool three = three_wide_stride2(g);
  for (int64_t r = r0; r < r1; r++) {
    const int64_t ch = r / khw, i = (r / g.kw) % g.kh, j = r % g.kw;
    if (three && j == 0 && r + 3 <= r1) {
      // The window row's three column rows together.
      float* dst = col + r * plane;
      for (int64_t oy = 0; oy < g.oh; oy++, dst += g.ow) {
        const int64_t y = oy * g.sh - g.ph + i;
        if (y < 0 || y >= g.h) {
          for (int k = 0; k < 3; k++) std::memset(dst + k * plane, 0, (size_t)g.ow * sizeof(float));
          continue;
        }
        im2col_three(x + (ch * g.h + y) * g.w, g.w, g.ow, dst, dst + plane, dst + 2 * plane);
      }
      r += 2;
      continue;
    }
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
      } else if (g.sw == 2) {
        copy_stride2(src + off, dst, lo, hi, g.w - off);
      } else {
        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = src[ox * g.sw + off];
      }
      for (int64_t ox = hi; ox < g.ow; ox++) dst[ox] = 0;
    }
  }
}

void lth::col2im_channels(const float* __restrict col, float* __restrict x, const Geom& g, int64_t c0, int64_t c1) {
  for (int64_t ch = c0; ch < c1; ch++) {
    float* plane = x + ch * g.h * g.w;
    for (int64_t i = 0; i < g.kh; i++) {
      if (three_wide_stride2(g)) {
        // The window row's three column rows together (each entry's terms in j's order).
        const int64_t rows = g.oh * g.ow;  // between column rows
        const float* src = col + (ch * g.kh + i) * 3 * rows;
        for (int64_t oy = 0; oy < g.oh; oy++, src += g.ow) {
          const int64_t y = oy * g.sh - g.ph + i;
          if (y >= 0 && y < g.h) col2im_three(src, src + rows, src + 2 * rows, g.w, g.ow, plane + y * g.w);
        }
        continue;
      }
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
          } else if (g.sw == 2) {
            add_stride2(src, dst, lo, hi, g.w - off);
          } else {
            for (int64_t ox = lo; ox < hi; ox++) dst[ox * g.sw] += src[ox];
          }
        }
      }
    }
  }
}

double lth::plane_sum(const float* p, int64_t size) {
  float lane[16] = {0};
  int64_t k = 0;
  for (; k + 16 <= size; k += 16)
    for (int l = 0; l < 16; l++) lane[l] += p[k + l];
  for (; k < size; k++) lane[k & 15] += p[k];
  double plane = 0;
  for (int l = 0; l < 16; l++) plane += (double)lane[l];
  return plane;
}

void lth::add_channel_sums(const double* sums, int64_t n, int64_t ch, float* gb) {
  for (int64_t c = 0; c < ch; c++) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += sums[i * ch + c];
    gb[c] = (float)((double)gb[c] + s);
  }
}

namespace {

using lth::add_channel_sums;
using lth::col2im_channels;
using lth::im2col_rows;
using lth::plane_sum;

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

// ------------------------------------------------------------------ exports

using lth::ArgReader;
using lth::ArgSpec;
using lth::Args;
using lth::ArgValue;
using lth::undefined_value;
namespace arg = lth::arg;
using u128 = unsigned __int128;

// im2col(x, col, ...geometry) and col2im(col, x, ...geometry): the image and the column
// matrix, then channels, height, width, kh, kw, strideH, strideW, padH, padW.
constexpr ArgSpec kIm2colArgs[] = {arg::f32("x"),          arg::f32("col"),        arg::dim("channels"), arg::dim("height"),
                                   arg::dim("width"),      arg::dim("kh", 1),      arg::dim("kw", 1),    arg::dim("strideH", 1),
                                   arg::dim("strideW", 1), arg::dim("padH"),       arg::dim("padW")};
constexpr ArgSpec kCol2imArgs[] = {arg::f32("col"),        arg::f32("x"),          arg::dim("channels"), arg::dim("height"),
                                   arg::dim("width"),      arg::dim("kh", 1),      arg::dim("kw", 1),    arg::dim("strideH", 1),
                                   arg::dim("strideW", 1), arg::dim("padH"),       arg::dim("padW")};

// The geometry of im2col / col2im from arguments 2..10.
bool read_geometry(ArgReader& a, const ArgValue* v, Geom* g) {
  return lth::conv_geometry(a, v[2].dim(), v[3].dim(), v[4].dim(), v[5].dim(), v[6].dim(), v[7].dim(), v[8].dim(),
                            v[9].dim(), v[10].dim(), g);
}

napi_value Im2col(napi_env env, napi_callback_info info) {
  Args<11> a(env, info, "im2col", kIm2colArgs);
  if (!a.ok()) return nullptr;
  const float* x = a[0].f32();
  float* col = a[1].f32();
  Geom g;
  if (!read_geometry(a, &a[0], &g)) return nullptr;
  a.need("x", a[0].len, (u128)g.c * g.h * g.w, "channels*height*width");
  a.need("col", a[1].len, (u128)g.c * g.kh * g.kw * g.oh * g.ow, "channels*kh*kw*outH*outW");
  if (!a.ok()) return nullptr;
  const int64_t rows = g.c * g.kh * g.kw;
  if (rows > 0 && g.oh > 0 && g.ow > 0) {
    FtzScope ftz;
    parallel_units(rows, rows * g.oh * g.ow, [&](int64_t b, int64_t e) { im2col_rows(x, col, g, b, e); });
  }
  return undefined_value(env);
}

napi_value Col2im(napi_env env, napi_callback_info info) {
  Args<11> a(env, info, "col2im", kCol2imArgs);
  if (!a.ok()) return nullptr;
  const float* col = a[0].f32();
  float* x = a[1].f32();
  Geom g;
  if (!read_geometry(a, &a[0], &g)) return nullptr;
  a.need("col", a[0].len, (u128)g.c * g.kh * g.kw * g.oh * g.ow, "channels*kh*kw*outH*outW");
  a.need("x", a[1].len, (u128)g.c * g.h * g.w, "channels*height*width");
  if (!a.ok()) return nullptr;
  if (g.c > 0 && g.h > 0 && g.w > 0) {
    FtzScope ftz;
    parallel_units(g.c, g.c * g.kh * g.kw * g.oh * g.ow, [&](int64_t b, int64_t e) { col2im_channels(col, x, g, b, e); });
  }
  return undefined_value(env);
}

// channelBiasAct(x, bias, out, n, channels, size, relu): out = act(x + bias[channel]).
constexpr ArgSpec kChannelBiasActArgs[] = {arg::f32("x"),        arg::f32("bias"), arg::f32("out"), arg::dim("n"),
                                           arg::dim("channels"), arg::dim("size"), arg::flag("relu")};

napi_value ChannelBiasAct(napi_env env, napi_callback_info info) {
  Args<7> a(env, info, "channelBiasAct", kChannelBiasActArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *bias = a[1].f32();
  float* out = a[2].f32();
  const int64_t n = a[3].dim(), ch = a[4].dim(), size = a[5].dim();
  const bool relu = a[6].flag;
  a.need("x", a[0].len, (u128)n * ch * size, "n*channels*size");
  a.need("bias", a[1].len, (u128)ch, "channels");
  a.need("out", a[2].len, (u128)n * ch * size, "n*channels*size");
  if (!a.ok()) return nullptr;
  if (n && ch && size) {
    FtzScope ftz;
    parallel_units(n * ch, n * ch * size, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; p++) lth::gK->rowBiasAct(x + p * size, out + p * size, bias + p % ch, 1, size, relu, nullptr);
    });
  }
  return undefined_value(env);
}

// sumChannels(x, out, n, channels, size, accumulate): out (+)= the sums per channel.
constexpr ArgSpec kSumChannelsArgs[] = {arg::f32("x"),    arg::f32("out"), arg::dim("n"), arg::dim("channels"),
                                        arg::dim("size"), arg::flag("accumulate")};

napi_value SumChannels(napi_env env, napi_callback_info info) {
  Args<6> a(env, info, "sumChannels", kSumChannelsArgs);
  if (!a.ok()) return nullptr;
  const float* x = a[0].f32();
  float* out = a[1].f32();
  const int64_t n = a[2].dim(), ch = a[3].dim(), size = a[4].dim();
  const bool acc = a[5].flag;
  a.need("x", a[0].len, (u128)n * ch * size, "n*channels*size");
  a.need("out", a[1].len, (u128)ch, "channels");
  if (!a.ok()) return nullptr;
  if (ch) {
    FtzScope ftz;
    parallel_units(ch, n * ch * size, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; c++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += plane_sum(x + (i * ch + c) * size, size);
        out[c] = acc ? (float)((double)out[c] + s) : (float)s;
      }
    });
  }
  return undefined_value(env);
}

// channelBiasActBackward(gradOut, y, gradBias, n, channels, size, relu): with relu, gradOut
// = 0 where y <= 0 (in place); then gradBias += sumChannels(gradOut) (gradBias may be null).
constexpr ArgSpec kChannelBiasActBackwardArgs[] = {arg::f32("gradOut"), arg::f32("y"),       arg::f32_or_null("gradBias"),
                                                   arg::dim("n"),       arg::dim("channels"), arg::dim("size"),
                                                   arg::flag("relu")};

napi_value ChannelBiasActBackward(napi_env env, napi_callback_info info) {
  Args<7> a(env, info, "channelBiasActBackward", kChannelBiasActBackwardArgs);
  if (!a.ok()) return nullptr;
  float* gy = a[0].f32();
  const float* y = a[1].f32();
  float* gb = a[2].present ? a[2].f32() : nullptr;
  const int64_t n = a[3].dim(), ch = a[4].dim(), size = a[5].dim();
  const bool relu = a[6].flag;
  a.need("gradOut", a[0].len, (u128)n * ch * size, "n*channels*size");
  if (relu) a.need("y", a[1].len, (u128)n * ch * size, "n*channels*size");
  if (gb) a.need("gradBias", a[2].len, (u128)ch, "channels");
  if (!a.ok()) return nullptr;
  if (!relu && !gb) return undefined_value(env);
  FtzScope ftz;
  // One pass over the planes in memory order: each masked, and its sum kept, as
  // sumChannels computes it; the channels' sums then in sample order (sumChannels').
  thread_local std::vector<double> sbuf;  // the caller's: the pool's threads write through `sums`
  if (gb && sbuf.size() < (size_t)(n * ch)) sbuf.resize((size_t)(n * ch));
  double* sums = sbuf.data();
  parallel_units(n * ch, n * ch * size, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; p++) {
      float* g = gy + p * size;
      if (relu) {
        const float* yp = y + p * size;
        for (int64_t k = 0; k < size; k++) g[k] = yp[k] > 0.0f ? g[k] : 0.0f;
      }
      if (gb) sums[p] = plane_sum(g, size);
    }
  });
  if (gb) add_channel_sums(sums, n, ch, gb);
  return undefined_value(env);
}

// maxPool2dActBackward(gradPooled, pooled, argmax, gradOut, gradBias, n, channels, height, width, relu): the
// backward pass of conv3x3Pool's pooling and activation (see backend.ts).
constexpr ArgSpec kMaxPool2dActBackwardArgs[] = {arg::f32("gradPooled"), arg::f32("pooled"),       arg::u8("argmax"),
                                                 arg::f32("gradOut"),    arg::f32_or_null("gradBias"), arg::dim("n"),
                                                 arg::dim("channels"),   arg::dim("height"),       arg::dim("width"),
                                                 arg::flag("relu")};

napi_value MaxPool2dActBackward(napi_env env, napi_callback_info info) {
  Args<10> a(env, info, "maxPool2dActBackward", kMaxPool2dActBackwardArgs);
  if (!a.ok()) return nullptr;
  const float *gp = a[0].f32(), *pooled = a[1].f32();
  const uint8_t* argmax = a[2].u8();
  float* g = a[3].f32();
  float* gb = a[4].present ? a[4].f32() : nullptr;
  const int64_t n = a[5].dim(), ch = a[6].dim(), h = a[7].dim(), w = a[8].dim();
  const bool relu = a[9].flag;
  if (h % 2 != 0 || w % 2 != 0) {
    a.fail(true, "2x2 pooling needs an even height and width, got %lldx%lld", (long long)h, (long long)w);
    return nullptr;
  }
  const int64_t size = h * w, ps = size / 4;
  a.need("gradPooled", a[0].len, (u128)n * ch * ps, "n*channels*(height/2)*(width/2)");
  a.need("pooled", a[1].len, (u128)n * ch * ps, "n*channels*(height/2)*(width/2)");
  a.need("argmax", a[2].len, (u128)n * ch * ps, "n*channels*(height/2)*(width/2)");
  a.need("gradOut", a[3].len, (u128)n * ch * size, "n*channels*height*width");
  if (gb) a.need("gradBias", a[4].len, (u128)ch, "channels");
  if (!a.ok()) return nullptr;
  FtzScope ftz;
  thread_local std::vector<double> sbuf;  // the caller's: the pool's threads write through `sums`
  if (gb && sbuf.size() < (size_t)(n * ch)) sbuf.resize((size_t)(n * ch));
  double* sums = sbuf.data();
  const int64_t pw = w / 2;
  parallel_units(n * ch, n * ch * size, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; p++) {
      const float* gpp = gp + p * ps;
      const float* pp = pooled + p * ps;
      const uint8_t* ap = argmax + p * ps;
      float* gpl = g + p * size;
      for (int64_t oy = 0; oy < h / 2; oy++) {
        float* __restrict r0 = gpl + 2 * oy * w;
        float* __restrict r1 = r0 + w;
        const int64_t row = oy * pw;
        int64_t ox = 0;
#ifdef __SSE2__
        const __m128 zero = _mm_setzero_ps();
        for (; ox + 4 <= pw; ox += 4) {
          const int64_t i = row + ox;
          __m128 v = _mm_add_ps(zero, _mm_loadu_ps(gpp + i));
          if (relu) v = _mm_and_ps(_mm_cmpgt_ps(_mm_loadu_ps(pp + i), zero), v);
          int32_t bytes;
          std::memcpy(&bytes, ap + i, 4);
          const __m128i k = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(bytes), _mm_setzero_si128()),
                                               _mm_setzero_si128());
          const __m128 ga = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(0))), v);
          const __m128 gb = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(1))), v);
          const __m128 gc = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(2))), v);
          const __m128 gd = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(3))), v);
          _mm_storeu_ps(r0 + 2 * ox, _mm_unpacklo_ps(ga, gb));
          _mm_storeu_ps(r0 + 2 * ox + 4, _mm_unpackhi_ps(ga, gb));
          _mm_storeu_ps(r1 + 2 * ox, _mm_unpacklo_ps(gc, gd));
          _mm_storeu_ps(r1 + 2 * ox + 4, _mm_unpackhi_ps(gc, gd));
        }
#endif
        for (; ox < pw; ox++) {
          const int64_t i = row + ox;
          // What zeroing, maxPool2dBackward's add and channelBiasActBackward's mask leave
          // (0 + g turns a -0 into +0 as that add does).
          const float v = !relu || pp[i] > 0.0f ? 0.0f + gpp[i] : 0.0f;
          const int k = ap[i];
          r0[2 * ox] = k == 0 ? v : 0.0f;
          r0[2 * ox + 1] = k == 1 ? v : 0.0f;
          r1[2 * ox] = k == 2 ? v : 0.0f;
          r1[2 * ox + 1] = k == 3 ? v : 0.0f;
        }
      }
      if (gb) sums[p] = plane_sum(gpl, size);
    }
  });
  if (gb) add_channel_sums(sums, n, ch, gb);
  return undefined_value(env);
}

// The geometry of the pooling kernels: planes, height, width, k, stride, the arguments
// from `first` on; false (and a thrown RangeError) when the window does not fit.
struct PoolGeom {
  int64_t planes, h, w, k, s, oh, ow;
};

bool pool_geometry(ArgReader& a, const ArgValue* v, PoolGeom* g) {
  g->planes = v[0].dim();
  g->h = v[1].dim();
  g->w = v[2].dim();
  g->k = v[3].dim();
  g->s = v[4].dim();
  if (g->h < g->k || g->w < g->k) {
    a.fail(true, "a %lldx%lld window does not fit a %lldx%lld plane", (long long)g->k, (long long)g->k, (long long)g->h,
           (long long)g->w);
    return false;
  }
  g->oh = (g->h - g->k) / g->s + 1;
  g->ow = (g->w - g->k) / g->s + 1;
  return true;
}

// maxPool2d(x, out, planes, height, width, k, stride)
constexpr ArgSpec kMaxPool2dArgs[] = {arg::f32("x"),     arg::f32("out"),  arg::dim("planes"),   arg::dim("height"),
                                      arg::dim("width"), arg::dim("k", 1), arg::dim("stride", 1)};

napi_value MaxPool2d(napi_env env, napi_callback_info info) {
  Args<7> a(env, info, "maxPool2d", kMaxPool2dArgs);
  if (!a.ok()) return nullptr;
  const float* x = a[0].f32();
  float* out = a[1].f32();
  PoolGeom g;
  if (!pool_geometry(a, &a[2], &g)) return nullptr;
  a.need("x", a[0].len, (u128)g.planes * g.h * g.w, "planes*height*width");
  a.need("out", a[1].len, (u128)g.planes * g.oh * g.ow, "planes*outH*outW");
  if (!a.ok()) return nullptr;
  if (g.planes) {
    FtzScope ftz;
    parallel_units(g.planes, g.planes * g.h * g.w,
                   [&](int64_t b, int64_t e) { maxpool_planes(x, out, g.h, g.w, g.k, g.s, g.oh, g.ow, b, e); });
  }
  return undefined_value(env);
}

// maxPool2dBackward(x, gradOut, gradIn, planes, height, width, k, stride)
constexpr ArgSpec kMaxPool2dBackwardArgs[] = {arg::f32("x"),      arg::f32("gradOut"), arg::f32("gradIn"),
                                              arg::dim("planes"), arg::dim("height"),  arg::dim("width"),
                                              arg::dim("k", 1),   arg::dim("stride", 1)};

napi_value MaxPool2dBackward(napi_env env, napi_callback_info info) {
  Args<8> a(env, info, "maxPool2dBackward", kMaxPool2dBackwardArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *gy = a[1].f32();
  float* gx = a[2].f32();
  PoolGeom g;
  if (!pool_geometry(a, &a[3], &g)) return nullptr;
  a.need("x", a[0].len, (u128)g.planes * g.h * g.w, "planes*height*width");
  a.need("gradOut", a[1].len, (u128)g.planes * g.oh * g.ow, "planes*outH*outW");
  a.need("gradIn", a[2].len, (u128)g.planes * g.h * g.w, "planes*height*width");
  if (!a.ok()) return nullptr;
  if (g.planes) {
    FtzScope ftz;
    parallel_units(g.planes, g.planes * g.h * g.w,
                   [&](int64_t b, int64_t e) { maxpool_backward_planes(x, gy, gx, g.h, g.w, g.k, g.s, g.oh, g.ow, b, e); });
  }
  return undefined_value(env);
}

}  // namespace

bool lth::register_conv(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {
      {"im2col", Im2col},       {"col2im", Col2im},         {"channelBiasAct", ChannelBiasAct},
      {"sumChannels", SumChannels}, {"channelBiasActBackward", ChannelBiasActBackward}, {"maxPool2d", MaxPool2d}, {"maxPool2dActBackward", MaxPool2dActBackward}, {"maxPool2dBackward", MaxPool2dBackward},
  };
  return define_exports(env, exports, kExports);
}
