// sparse_conv.cc: sparseConvForward, sparseConvInputGrad and sparseConvWeightGrad, the
// stride-1 convolution by a sparse weight [out, in, kh, kw] (the Backend methods of the
// same names; src/backend/backend.ts documents them, src/backend/reference.ts is the
// oracle). The weight's pattern is compressed rows (out channels) over columns
// in·kh·kw, its values packed in row-major order, with the transposed index for the input
// gradient, all plain Int32Arrays built by src/tensor/sparse-conv.ts and checked here on
// every call (O(nnz), next to nothing beside the convolution).
//
// Each image is zero-padded into a scratch buffer and convolved in the shift form (see
// sparse_conv_impl.h): every nonzero is a vector FMA over a run of up to 192 outputs (64
// on AVX2), the tile of outputs kept in registers across the row's nonzeros. The input gradient is the
// same kernel on the output gradient padded by k - 1 - pad, with the transposed pattern
// and the taps turned by 180 degrees. The weight gradient is one dot product per nonzero
// and image over the padded grid.
//
// Pruned taps cost nothing, but each nonzero's loads are unaligned (its offset is
// arbitrary), and the grid's junk columns are computed too: on Conv-6's layers at 20%
// density the kernels run at about a third of the FMA peak (two 16-float FMAs a cycle on
// the 2-core AVX-512 machine), where the dense path's Winograd GEMMs run near it
// (docs/performance.md: what bounds them, and what was tried). The weight gradient's dot
// products read the input under the junk columns too (times a zero output gradient), so
// an infinity or NaN in the input can reach nonzeros that the direct sum would not.
//
// Threads: forward and input gradient split the batch into whole images; the weight
// gradient sums images in up to 8 groups fixed by the batch size (each group in image
// order into its own partial, the partials added in group order). Every result goes
// through the same instructions whatever the thread count, so results do not depend on
// it.

#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "ftz.h"
#include "napi_args.h"
#include "parallel.h"
#include "pool.h"

// The 16-float vectors of the AVX-512 copy never cross a non-inlined call.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

struct ConvKernels {
  void (*conv)(const float*, const int32_t*, int64_t, const int32_t*, const float*, int64_t, int64_t, int64_t, int64_t,
               int64_t, float*, float*, const float*, bool, bool);
  void (*weightGrad)(const float*, const float*, const int32_t*, const int32_t*, int64_t, int64_t, int64_t, float*);
};

#if defined(__x86_64__) || defined(__i386__)
#define LTH_SC_X86 1
namespace avx512 {
#define LTH_SC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define LTH_SC_WIDTH 16
#define LTH_SC_VMAX 12
#include "sparse_conv_impl.h"
#undef LTH_SC_VMAX
#undef LTH_SC_WIDTH
#undef LTH_SC_TARGET
}  // namespace avx512
namespace avx2 {
#define LTH_SC_TARGET __attribute__((target("avx2,fma")))
#define LTH_SC_WIDTH 8
#define LTH_SC_VMAX 8
#include "sparse_conv_impl.h"
#undef LTH_SC_VMAX
#undef LTH_SC_WIDTH
#undef LTH_SC_TARGET
}  // namespace avx2
#endif
namespace scalar {
#define LTH_SC_TARGET
#define LTH_SC_WIDTH 4
#define LTH_SC_VMAX 8
#include "sparse_conv_impl.h"
#undef LTH_SC_VMAX
#undef LTH_SC_WIDTH
#undef LTH_SC_TARGET
}  // namespace scalar

// The table of the path in use (the GEMM's, switched by setSimd).
const ConvKernels& kernels() {
#ifdef LTH_SC_X86
  if (lth::avx512_in_use()) return avx512::kTable;
  if (!std::strcmp(lth::gK->name, "avx2")) return avx2::kTable;
#endif
  return scalar::kTable;
}

using lth::ArgSpec;
using u128 = unsigned __int128;
namespace arg = lth::arg;

float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Zero-pads planes [c][h][w] into dst, planes ps floats apart, rows wp apart (top and left
// padding t, l), plus `slack` zeros after the last plane for the kernels' reads past the
// end of the grid. With wp = w + l, each row's right padding is the next row's left
// padding (see Geometry).
void pad_planes(const float* src, float* dst, int64_t c, int64_t h, int64_t w, int64_t t, int64_t l, int64_t wp,
                int64_t ps, int64_t slack) {
  std::memset(dst, 0, (size_t)(c * ps + slack) * sizeof(float));
  for (int64_t i = 0; i < c; i++)
    for (int64_t y = 0; y < h; y++) std::memcpy(dst + i * ps + (t + y) * wp + l, src + (i * h + y) * w, (size_t)w * 4);
}

// A call's geometry: the input padded to hp rows, the output oh x ow. The padded rows are
// wp = w + pw apart, not w + 2·pw: padding is symmetric, so the pw zeros after a row are
// the next row's left padding too (the first row's are the zeros before it, the last
// row's the pw after the plane), and the shift form's grid of width wp has pw junk
// columns instead of 2·pw (1 of 17 at 16×16). Planes are ps = hp·wp + pw apart.
struct Geometry {
  int64_t n, cin, cout, h, w, kh, kw, ph, pw, hp, wp, ps, oh, ow;
};

// The row and plane strides of planes w wide padded by p on each side, hp rows in all.
int64_t padded_width(int64_t w, int64_t p) { return w + p; }
int64_t padded_plane(int64_t hp, int64_t w, int64_t p) { return hp * padded_width(w, p) + p; }

// Reads and checks the pattern arrays (and the transposed ones when tPtr >= 0) and the
// geometry; false with an exception pending.
bool read_geometry(lth::ArgReader& a, const lth::ArgValue* v, int iPtr, int iCol, int iTPtr, int iTIdx, int iDims,
                   Geometry& g) {
  g = {v[iDims].dim(),     v[iDims + 1].dim(), v[iDims + 2].dim(), v[iDims + 3].dim(), v[iDims + 4].dim(),
       v[iDims + 5].dim(), v[iDims + 6].dim(), v[iDims + 7].dim(), v[iDims + 8].dim(), 0, 0, 0, 0, 0};
  if (g.kh < 1 || g.kw < 1 || g.ph >= g.kh || g.pw >= g.kw) {
    a.fail(true, "kernel %lldx%lld needs padding below it, got %lldx%lld", (long long)g.kh, (long long)g.kw,
           (long long)g.ph, (long long)g.pw);
    return false;
  }
  g.hp = g.h + 2 * g.ph;
  g.wp = g.w + 2 * g.pw;  // the padded width, for the checks (the row stride below)
  g.oh = g.hp - g.kh + 1;
  g.ow = g.wp - g.kw + 1;
  if (g.oh < 1 || g.ow < 1) {
    a.fail(true, "a %lldx%lld kernel with padding %lldx%lld does not fit a %lldx%lld image", (long long)g.kh,
           (long long)g.kw, (long long)g.ph, (long long)g.pw, (long long)g.h, (long long)g.w);
    return false;
  }
  if ((u128)(g.cin + g.cout) * (u128)(g.hp + g.kh) * (u128)(g.wp + g.kw) >= ((u128)1 << 31)) {
    a.fail(true, "an image of %lld planes of %lldx%lld is too large", (long long)(g.cin + g.cout), (long long)g.hp,
           (long long)g.wp);
    return false;
  }
  g.wp = padded_width(g.w, g.pw);
  g.ps = padded_plane(g.hp, g.w, g.pw);
  const int64_t ckk = g.cin * g.kh * g.kw;
  const int32_t* ptr = v[iPtr].i32();
  const int32_t* col = v[iCol].i32();
  const size_t nnz = v[iCol].len;
  a.need("rowPtr", v[iPtr].len, (u128)g.cout + 1, "outChannels+1");
  if (!a.ok()) return false;
  if (ptr[0] != 0 || (size_t)ptr[g.cout] != nnz) {
    a.fail(true, "rowPtr must run from 0 to colIdx.length = %zu", nnz);
    return false;
  }
  for (int64_t r = 0; r < g.cout; r++) {
    if (ptr[r + 1] < ptr[r]) {
      a.fail(true, "rowPtr must not decrease (row %lld)", (long long)r);
      return false;
    }
  }
  for (size_t k = 0; k < nnz; k++) {
    if (col[k] < 0 || col[k] >= ckk) {
      a.fail(true, "colIdx[%zu] = %d is outside [0, inChannels*kh*kw = %lld)", k, col[k], (long long)ckk);
      return false;
    }
  }
  if (iTPtr < 0) return true;
  const int32_t* tp = v[iTPtr].i32();
  const int32_t* ti = v[iTIdx].i32();
  a.need("tPtr", v[iTPtr].len, (u128)g.cin + 1, "inChannels+1");
  a.need("tIdx", v[iTIdx].len, (u128)nnz, "nnz");
  if (!a.ok()) return false;
  if (tp[0] != 0 || (size_t)tp[g.cin] != nnz) {
    a.fail(true, "tPtr must run from 0 to nnz = %zu", nnz);
    return false;
  }
  for (int64_t c = 0; c < g.cin; c++) {
    if (tp[c + 1] < tp[c]) {
      a.fail(true, "tPtr must not decrease (column %lld)", (long long)c);
      return false;
    }
  }
  for (size_t j = 0; j < nnz; j++) {
    if (ti[j] < 0 || (size_t)ti[j] >= nnz) {
      a.fail(true, "tIdx[%zu] = %d is outside [0, nnz = %zu)", j, ti[j], nnz);
      return false;
    }
  }
  return true;
}

// The forward offsets: nonzero k (column c·kh·kw + i·kw + j) reads the padded input at
// c·ps + i·wp + j.
void forward_offsets(const Geometry& g, const int32_t* col, size_t nnz, int32_t* off) {
  const int64_t taps = g.kh * g.kw;
  for (size_t k = 0; k < nnz; k++) {
    const int64_t c = col[k] / taps, t = col[k] % taps;
    off[k] = (int32_t)(c * g.ps + (t / g.kw) * g.wp + t % g.kw);
  }
}

// Slack floats after a padded buffer: the kernels read up to 15 past the last grid row
// (rounded to 16) from the last tap.
int64_t slack(const Geometry& g) { return g.kw + 64; }

// Source channels per block of a shift-form convolution: enough that the source rows
// under 128 outputs (128 + (kh-1)·width + kw floats a channel) fill about 16 KB,
// half of L1. On the 2-core AVX-512 machine (Zen 4, 1 MB L2) this measured the same as
// one block (the kernel is bound by its unaligned loads, not by where they hit); it keeps
// the reads in L1 where L2 is smaller or slower.
int64_t channels_per_block(int64_t kh, int64_t kw, int64_t width) {
  const int64_t per = 128 + (kh - 1) * width + kw;
  return 4096 / per > 1 ? 4096 / per : 1;
}

// seg [rows][nb + 1] for entries whose source channels ch[j] ascend within each row
// (ptr): row r's entries of channel block b are [seg[r][b], seg[r][b+1]).
void block_segments(const int32_t* ptr, const int32_t* ch, int64_t rows, int64_t per, int64_t nb, int32_t* seg) {
  for (int64_t r = 0; r < rows; r++) {
    int32_t* s = seg + r * (nb + 1);
    int32_t j = ptr[r];
    for (int64_t b = 0; b < nb; b++) {
      s[b] = j;
      while (j < ptr[r + 1] && ch[j] < (b + 1) * per) j++;
    }
    s[nb] = ptr[r + 1];
  }
}

struct ConvJob {
  const Geometry* g;
  const ConvKernels* kn;
  const int32_t *seg, *off;
  int64_t nb;
  const float *w, *src, *bias;
  float* out;
  int64_t rows, srcC, srcH, srcW, padT, padL, wp, ps, outH, outW, inSize, outSize;
  bool relu, accumulate;
};

// Runs a shift-form convolution on every image of the batch, whole images split over
// the pool.
void conv_images(const ConvJob& j) {
  const int64_t n = j.g->n;
  lth::parallel_units(n, n * j.rows * j.outH * j.outW * 8, [&j](int64_t b0, int64_t b1) {
    thread_local std::vector<float> pbuf, ebuf;
    const int64_t sl = j.g->kw + 64;
    float* xp = grow(pbuf, (size_t)(j.srcC * j.ps + sl));
    float* ext = grow(ebuf, (size_t)(j.rows * ((j.outH * j.wp + 15) / 16 * 16)));
    for (int64_t b = b0; b < b1; b++) {
      pad_planes(j.src + b * j.inSize, xp, j.srcC, j.srcH, j.srcW, j.padT, j.padL, j.wp, j.ps, sl);
      j.kn->conv(xp, j.seg, j.nb, j.off, j.w, 0, j.rows, j.outH, j.outW, j.wp, ext, j.out + b * j.outSize, j.bias, j.relu,
                 j.accumulate);
    }
  });
}

// sparseConvForward(rowPtr, colIdx, vals, x, y, bias, n, inChannels, outChannels, height, width, kh, kw, padH, padW, relu)
constexpr ArgSpec kForwardArgs[] = {
    arg::i32("rowPtr"), arg::i32("colIdx"),     arg::f32("vals"),        arg::f32("x"),      arg::f32("y"),
    arg::f32_or_null("bias"), arg::dim("n"),    arg::dim("inChannels"),  arg::dim("outChannels"), arg::dim("height"),
    arg::dim("width"),  arg::dim("kh", 1),      arg::dim("kw", 1),       arg::dim("padH"),   arg::dim("padW"),
    arg::flag("relu")};

napi_value SparseConvForward(napi_env env, napi_callback_info info) {
  lth::Args<16> a(env, info, "sparseConvForward", kForwardArgs);
  if (!a.ok()) return nullptr;
  Geometry g;
  if (!read_geometry(a, &a[0], 0, 1, -1, -1, 6, g)) return nullptr;
  const size_t nnz = a[1].len;
  a.need("vals", a[2].len, (u128)nnz, "nnz");
  a.need("x", a[3].len, (u128)g.n * g.cin * g.h * g.w, "n*inChannels*height*width");
  a.need("y", a[4].len, (u128)g.n * g.cout * g.oh * g.ow, "n*outChannels*outH*outW");
  if (a[5].present) a.need("bias", a[5].len, (u128)g.cout, "outChannels");
  if (!a.ok()) return nullptr;
  float* y = a[4].f32();
  if (lth::overlaps(y, a[4].len * 4, a[3].data, a[3].len * 4)) {
    a.fail(true, "y must not share memory with x");
    return nullptr;
  }
  if (g.n == 0 || g.cout == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  thread_local std::vector<int32_t> obuf;
  if (obuf.size() < nnz) obuf.resize(nnz);
  forward_offsets(g, a[1].i32(), nnz, obuf.data());
  const int64_t per = channels_per_block(g.kh, g.kw, g.wp), nb = (g.cin + per - 1) / per;
  thread_local std::vector<int32_t> cbuf, sbuf;
  if (cbuf.size() < nnz) cbuf.resize(nnz);
  if (sbuf.size() < (size_t)(g.cout * (nb + 1))) sbuf.resize((size_t)(g.cout * (nb + 1)));
  const int32_t* col = a[1].i32();
  for (size_t k = 0; k < nnz; k++) cbuf[k] = (int32_t)(col[k] / (g.kh * g.kw));
  block_segments(a[0].i32(), cbuf.data(), g.cout, per, nb, sbuf.data());
  ConvJob j{&g, &kernels(), sbuf.data(), obuf.data(), nb, a[2].f32(), a[3].f32(), a[5].present ? a[5].f32() : nullptr, y,
            g.cout, g.cin, g.h, g.w, g.ph, g.pw, g.wp, g.ps, g.oh, g.ow, g.cin * g.h * g.w, g.cout * g.oh * g.ow,
            a[15].flag, false};
  conv_images(j);
  return lth::undefined_value(env);
}

// sparseConvInputGrad(rowPtr, colIdx, tPtr, tIdx, vals, gradOut, gradIn, n, inChannels, outChannels, height, width, kh, kw, padH, padW)
constexpr ArgSpec kInputGradArgs[] = {
    arg::i32("rowPtr"),  arg::i32("colIdx"),       arg::i32("tPtr"),         arg::i32("tIdx"),
    arg::f32("vals"),    arg::f32("gradOut"),      arg::f32("gradIn"),       arg::dim("n"),
    arg::dim("inChannels"), arg::dim("outChannels"), arg::dim("height"),     arg::dim("width"),
    arg::dim("kh", 1),   arg::dim("kw", 1),        arg::dim("padH"),         arg::dim("padW")};

napi_value SparseConvInputGrad(napi_env env, napi_callback_info info) {
  lth::Args<16> a(env, info, "sparseConvInputGrad", kInputGradArgs);
  if (!a.ok()) return nullptr;
  Geometry g;
  if (!read_geometry(a, &a[0], 0, 1, 2, 3, 7, g)) return nullptr;
  const size_t nnz = a[1].len;
  a.need("vals", a[4].len, (u128)nnz, "nnz");
  a.need("gradOut", a[5].len, (u128)g.n * g.cout * g.oh * g.ow, "n*outChannels*outH*outW");
  a.need("gradIn", a[6].len, (u128)g.n * g.cin * g.h * g.w, "n*inChannels*height*width");
  if (!a.ok()) return nullptr;
  float* gx = a[6].f32();
  if (lth::overlaps(gx, a[6].len * 4, a[5].data, a[5].len * 4)) {
    a.fail(true, "gradIn must not share memory with gradOut");
    return nullptr;
  }
  if (g.n == 0 || g.cin == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  // The output gradient padded by k - 1 - pad: gx[c, y, x] += Σ w·gyp[o, y + kh-1-i, x + kw-1-j].
  const int64_t th = g.kh - 1 - g.ph, tw = g.kw - 1 - g.pw;
  const int64_t hg = g.oh + 2 * th, wg = padded_width(g.ow, tw), psg = padded_plane(hg, g.ow, tw);
  const int32_t *rowPtr = a[0].i32(), *col = a[1].i32(), *tIdx = a[3].i32();
  const float* vals = a[4].f32();
  thread_local std::vector<int32_t> obuf, rbuf, cbuf, sbuf;
  thread_local std::vector<float> wbuf;
  if (obuf.size() < nnz) obuf.resize(nnz);
  if (rbuf.size() < nnz) rbuf.resize(nnz);
  if (cbuf.size() < nnz) cbuf.resize(nnz);
  float* w = grow(wbuf, nnz);
  for (int64_t r = 0; r < g.cout; r++)
    for (int32_t k = rowPtr[r]; k < rowPtr[r + 1]; k++) rbuf[k] = (int32_t)r;
  const int64_t taps = g.kh * g.kw;
  for (size_t jj = 0; jj < nnz; jj++) {
    const int32_t k = tIdx[jj];
    const int64_t t = col[k] % taps, i = t / g.kw, jx = t % g.kw;
    obuf[jj] = (int32_t)(rbuf[k] * psg + (g.kh - 1 - i) * wg + (g.kw - 1 - jx));
    cbuf[jj] = rbuf[k];
    w[jj] = vals[k];
  }
  const int64_t per = channels_per_block(g.kh, g.kw, wg), nb = (g.cout + per - 1) / per;
  if (sbuf.size() < (size_t)(g.cin * (nb + 1))) sbuf.resize((size_t)(g.cin * (nb + 1)));
  block_segments(a[2].i32(), cbuf.data(), g.cin, per, nb, sbuf.data());
  ConvJob j{&g, &kernels(), sbuf.data(), obuf.data(), nb, w, a[5].f32(), nullptr, gx, g.cin, g.cout, g.oh, g.ow, th, tw, wg,
            psg, g.h, g.w, g.cout * g.oh * g.ow, g.cin * g.h * g.w, false, true};
  conv_images(j);
  return lth::undefined_value(env);
}

struct GradJob {
  const Geometry* g;
  const ConvKernels* kn;
  const int32_t *ptr, *off;
  const float *x, *gy;
  float* partials;
  int64_t nnz, groups, qn;
};

void grad_group(void* ctx, int group) {
  const GradJob& j = *static_cast<const GradJob*>(ctx);
  const Geometry& g = *j.g;
  float* acc = j.partials + group * j.nnz;
  std::memset(acc, 0, (size_t)j.nnz * sizeof(float));
  thread_local std::vector<float> pbuf, gbuf;
  const int64_t sl = slack(g);
  float* xp = grow(pbuf, (size_t)(g.cin * g.ps + sl));
  float* gp = grow(gbuf, (size_t)(g.cout * j.qn));
  const int64_t b0 = g.n * group / j.groups, b1 = g.n * (group + 1) / j.groups;
  for (int64_t b = b0; b < b1; b++) {
    pad_planes(j.x + b * g.cin * g.h * g.w, xp, g.cin, g.h, g.w, g.ph, g.pw, g.wp, g.ps, sl);
    // The output gradient on the padded grid (width wp), its junk columns and tail zero.
    std::memset(gp, 0, (size_t)(g.cout * j.qn) * sizeof(float));
    const float* gy = j.gy + b * g.cout * g.oh * g.ow;
    for (int64_t o = 0; o < g.cout; o++)
      for (int64_t y = 0; y < g.oh; y++)
        std::memcpy(gp + o * j.qn + y * g.wp, gy + (o * g.oh + y) * g.ow, (size_t)g.ow * 4);
    j.kn->weightGrad(xp, gp, j.ptr, j.off, 0, g.cout, j.qn, acc);
  }
}

// sparseConvWeightGrad(rowPtr, colIdx, x, gradOut, gradVals, n, inChannels, outChannels, height, width, kh, kw, padH, padW)
constexpr ArgSpec kWeightGradArgs[] = {
    arg::i32("rowPtr"),    arg::i32("colIdx"),       arg::f32("x"),       arg::f32("gradOut"), arg::f32("gradVals"),
    arg::dim("n"),         arg::dim("inChannels"),   arg::dim("outChannels"), arg::dim("height"), arg::dim("width"),
    arg::dim("kh", 1),     arg::dim("kw", 1),        arg::dim("padH"),    arg::dim("padW")};

napi_value SparseConvWeightGrad(napi_env env, napi_callback_info info) {
  lth::Args<14> a(env, info, "sparseConvWeightGrad", kWeightGradArgs);
  if (!a.ok()) return nullptr;
  Geometry g;
  if (!read_geometry(a, &a[0], 0, 1, -1, -1, 5, g)) return nullptr;
  const size_t nnz = a[1].len;
  a.need("x", a[2].len, (u128)g.n * g.cin * g.h * g.w, "n*inChannels*height*width");
  a.need("gradOut", a[3].len, (u128)g.n * g.cout * g.oh * g.ow, "n*outChannels*outH*outW");
  a.need("gradVals", a[4].len, (u128)nnz, "nnz");
  if (!a.ok()) return nullptr;
  if (g.n == 0 || nnz == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  thread_local std::vector<int32_t> obuf;
  if (obuf.size() < nnz) obuf.resize(nnz);
  forward_offsets(g, a[1].i32(), nnz, obuf.data());
  const int64_t groups = g.n < 8 ? g.n : 8;
  thread_local std::vector<float> partials;
  GradJob j{&g, &kernels(), a[0].i32(), obuf.data(), a[2].f32(), a[3].f32(), grow(partials, (size_t)(groups * nnz)),
            (int64_t)nnz, groups, (g.oh * g.wp + 15) / 16 * 16};
  if (lth::thread_count() > 1 && groups > 1) lth::run_parts((int)groups, grad_group, &j);
  else
    for (int gi = 0; gi < groups; gi++) grad_group(&j, gi);
  float* gv = a[4].f32();
  for (size_t k = 0; k < nnz; k++) {
    float s = j.partials[k];
    for (int64_t gi = 1; gi < groups; gi++) s += j.partials[gi * nnz + k];
    gv[k] += s;
  }
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_sparse_conv(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"sparseConvForward", SparseConvForward},
                                        {"sparseConvInputGrad", SparseConvInputGrad},
                                        {"sparseConvWeightGrad", SparseConvWeightGrad}};
  return define_exports(env, exports, kExports);
}
