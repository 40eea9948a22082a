// The batch-norm kernels' loops over planes, included by native/norm.cc once per ISA inside
// its own namespace with LTH_NORM_TARGET set to that ISA's target attribute (AVX2 without
// FMA, or the baseline). No standard headers here (see native/README.md).
//
// The arithmetic is the same on every ISA, so the results are bitwise the same: sums run in
// eight float lanes (one 8-float vector: one AVX2 register, two SSE ones; or two such
// accumulators added), whose lanes are then added in double in a fixed order; elementwise passes round each operation apart (no
// multiply-add contraction: the AVX2 copy is compiled without FMA). Wider registers halve
// the instructions of these passes, which were instruction-bound on SSE.

#define LTH_VEC8_TARGET LTH_NORM_TARGET
#include "vec8.h"
#undef LTH_VEC8_TARGET

// Channels whose running sums a part of batchNormBackward keeps on its stack at a time (grad_sums_planes).
constexpr int64_t kNormChunk = 64;

// The lanes' sum in double as a tree: four pairs, then two, then one.
LTH_NORM_TARGET static inline double lane_sum(v8f a) { return pair_sum(low4(a), high4(a)); }

// The gradient reaching the affine map: g, or 0 where the ReLU output y is not positive (or NaN).
LTH_NORM_TARGET static inline v8f relu_mask(v8f g, v8f y) { return (v8f)((v8i)g & (v8i)(y > 0)); }
LTH_NORM_TARGET static inline float relu_mask(float g, float y) { return y > 0 ? g : 0.0f; }

// Σ x[k], k < len: the lanes' sums after the tail's.
LTH_NORM_TARGET static inline double sum_plane(const float* __restrict x, int64_t len) {
  v8f acc = {};
  int64_t k = 0;
  for (; k + 8 <= len; k += 8) acc += load8(x + k);
  double s = 0;
  for (; k < len; k++) s += x[k];
  for (int l = 0; l < 8; l++) s += acc[l];
  return s;
}

// Σ (x[k] - mu) into *s1 and Σ (x[k] - mu)² into *s2, k < len. Two accumulators a lane: a
// plane in cache is bound by the sums' latency, not by its loads.
LTH_NORM_TARGET static inline void sum_dev(const float* __restrict x, int64_t len, float mu, double* s1, double* s2) {
  v8f a0 = {}, b0 = {}, a1 = {}, b1 = {};
  int64_t k = 0;
  for (; k + 16 <= len; k += 16) {
    const v8f d0 = load8(x + k) - mu, d1 = load8(x + k + 8) - mu;
    a0 += d0;
    b0 += d0 * d0;
    a1 += d1;
    b1 += d1 * d1;
  }
  if (k + 8 <= len) {
    const v8f d = load8(x + k) - mu;
    a0 += d;
    b0 += d * d;
    k += 8;
  }
  double s = lane_sum(a0 + a1), t = lane_sum(b0 + b1);
  for (; k < len; k++) {
    const double d = (double)x[k] - mu;
    s += d;
    t += d * d;
  }
  *s1 = s;
  *s2 = t;
}

// Where the ReLU mask of batchNormBackward comes from: none (no ReLU), the ReLU's output y
// (y > 0), or the affine pass's value recomputed from x (x·sc + sh > 0, rounded as
// channelAffineAct rounds it, so the same mask bit for bit without reading y).
enum Mask { kNoMask, kMaskY, kMaskX };

template <int M>
LTH_NORM_TARGET static inline v8f masked(v8f g, const float* y, v8f xv, int64_t k, float sc, float sh) {
  if (M == kMaskY) return relu_mask(g, load8(y + k));
  if (M == kMaskX) return relu_mask(g, xv * sc + sh);
  return g;
}

template <int M>
LTH_NORM_TARGET static inline float masked(float g, const float* y, float xv, int64_t k, float sc, float sh) {
  if (M == kMaskY) return relu_mask(g, y[k]);
  if (M == kMaskX) return relu_mask(g, xv * sc + sh);
  return g;
}

// Σ g and Σ g·(x - mu) over one plane, g = gy masked as M says, added to *sg and *sgx; two
// accumulators a lane, as in sum_dev.
template <int M>
LTH_NORM_TARGET static inline void grad_sums(const float* __restrict x, const float* __restrict y,
                                             const float* __restrict gy, int64_t len, float mu, float sc, float sh,
                                             double* sg, double* sgx) {
  v8f a0 = {}, b0 = {}, a1 = {}, b1 = {};
  int64_t k = 0;
  for (; k + 16 <= len; k += 16) {
    const v8f x0 = load8(x + k), x1 = load8(x + k + 8);
    const v8f g0 = masked<M>(load8(gy + k), y, x0, k, sc, sh), g1 = masked<M>(load8(gy + k + 8), y, x1, k + 8, sc, sh);
    a0 += g0;
    b0 += g0 * (x0 - mu);
    a1 += g1;
    b1 += g1 * (x1 - mu);
  }
  if (k + 8 <= len) {
    const v8f xv = load8(x + k);
    const v8f g = masked<M>(load8(gy + k), y, xv, k, sc, sh);
    a0 += g;
    b0 += g * (xv - mu);
    k += 8;
  }
  double s = lane_sum(a0 + a1), t = lane_sum(b0 + b1);
  for (; k < len; k++) {
    const float g = masked<M>(gy[k], y, x[k], k, sc, sh);
    s += g;
    t += (double)g * ((double)x[k] - mu);
  }
  *sg += s;
  *sgx += t;
}

// gradIn (+)= k·(g - mg - (x - mu)·mgx) and gradResidual (+)= g over one plane, g = gy masked
// as M says; gx or gr null when not wanted; each added to or overwritten (accX, accR).
template <int M>
LTH_NORM_TARGET static inline void grad_in_plane(const float* __restrict x, const float* __restrict y,
                                                 const float* __restrict gy, float* __restrict gx, float* __restrict gr,
                                                 int64_t size, float mu, float sc, float sh, float k, float mg, float mgx,
                                                 bool accX, bool accR) {
  int64_t j = 0;
  for (; j + 8 <= size; j += 8) {
    const v8f xv = load8(x + j);
    const v8f g = masked<M>(load8(gy + j), y, xv, j, sc, sh);
    if (gx) {
      const v8f v = k * (g - mg - (xv - mu) * mgx);
      store8(gx + j, accX ? load8(gx + j) + v : v);
    }
    if (gr) store8(gr + j, accR ? load8(gr + j) + g : g);
  }
  for (; j < size; j++) {
    const float g = masked<M>(gy[j], y, x[j], j, sc, sh);
    if (gx) {
      const float v = k * (g - mg - (x[j] - mu) * mgx);
      gx[j] = accX ? gx[j] + v : v;
    }
    if (gr) gr[j] = accR ? gr[j] + g : g;
  }
}

// channelMoments over channels [b, e) of x [n, ch, size], image by image (the range's planes
// are contiguous in an image: long runs for the prefetcher); a channel's planes are still
// merged in image order. One sweep over memory: each plane's deviations d from a shift
// (the channel's mean so far; the plane's first value in the first image) are summed, and
// Σ (x - plane mean)² = Σ d² - (Σ d)²/size. That cancels when the plane's mean is far from
// the shift (more than half its spread: Σ d² > 5·(Σ d)²/size fails), and then the plane,
// still in L1, is summed again around its own mean. The planes are merged in double by
// Chan, Golub and LeVeque's pairwise formula. sums holds 2*ch doubles: mean, then
// Σ (x - mean)².
LTH_NORM_TARGET static void moments_part(const float* x, int64_t n, int64_t ch, int64_t size, int64_t b, int64_t e,
                                         double* sums, float* mean, float* var) {
  const double len = (double)size, inv = 1.0 / len;
  for (int64_t i = 0; i < n; i++) {
    // Merging a plane of size values into i·size: the mean moves by δ/(i+1), and
    // Σ (x - mean)² gains δ²·size·i/(i+1).
    const double step = 1.0 / (double)(i + 1), cross = len * (double)i * step;
    for (int64_t c = b; c < e; c++) {
      const float* p = x + (i * ch + c) * size;
      float shift = i ? (float)sums[c] : p[0];
      double sd, sdd;
      sum_dev(p, size, shift, &sd, &sdd);
      if (!(5 * sd * sd * inv <= sdd)) {
        shift = (float)(sum_plane(p, size) * inv);
        sum_dev(p, size, shift, &sd, &sdd);
      }
      const double mu = (double)shift + sd * inv, m2 = sdd - sd * sd * inv;  // m2 may round below 0 (NaN kept)
      const double delta = mu - sums[c];
      sums[c] += delta * step;
      sums[ch + c] += (m2 < 0 ? 0.0 : m2) + delta * delta * cross;
    }
  }
  for (int64_t c = b; c < e; c++) {
    mean[c] = (float)sums[c];
    var[c] = (float)(sums[ch + c] / (double)(n * size));
  }
}

// out = act(x·sc + sh (+ r)) over planes [b, e) (channel p % ch); the sum is rounded as two
// float additions, in that order, as an affine pass followed by an addition would round it.
LTH_NORM_TARGET static void affine_part(const float* x, const float* scale, const float* shift, const float* res,
                                        float* out, int64_t ch, int64_t size, int64_t b, int64_t e, bool relu) {
  for (int64_t p = b; p < e; p++) {
    const float sc = scale[p % ch], sh = shift[p % ch];
    const float* xp = x + p * size;
    float* op = out + p * size;
    if (res) {
      const float* rp = res + p * size;
      if (relu) {
        for (int64_t k = 0; k < size; k++) {
          const float v = (xp[k] * sc + sh) + rp[k];
          op[k] = v < 0 ? 0.0f : v;  // NaN stays NaN
        }
      } else {
        for (int64_t k = 0; k < size; k++) op[k] = (xp[k] * sc + sh) + rp[k];
      }
    } else if (relu) {
      for (int64_t k = 0; k < size; k++) {
        const float v = xp[k] * sc + sh;
        op[k] = v < 0 ? 0.0f : v;
      }
    } else {
      for (int64_t k = 0; k < size; k++) op[k] = xp[k] * sc + sh;
    }
  }
}

// The mask of batchNormBackward's call: none without relu, else from y when given, else
// from x·scale + shift (scale[c] = weight[c]·invstd[c], the affine pass's).
static inline int mask_of(bool relu, const float* y) { return !relu ? kNoMask : y ? kMaskY : kMaskX; }

template <int M>
LTH_NORM_TARGET static void grad_sums_planes(const float* x, const float* y, const float* gy, const float* mean,
                                             const float* scale, const float* shift, int64_t n, int64_t ch,
                                             int64_t size, int64_t b, int64_t e, double* sums) {
  // The running sums live on this thread's stack, kNormChunk channels at a time, and reach
  // `sums` once: parts of a few channels share cache lines of `sums`, and two threads
  // updating them there after every plane take turns at those lines.
  for (int64_t c0 = b; c0 < e; c0 += kNormChunk) {
    const int64_t c1 = c0 + kNormChunk < e ? c0 + kNormChunk : e;
    double local[2 * kNormChunk];
    for (int64_t c = c0; c < c1; c++) local[2 * (c - c0)] = sums[2 * c], local[2 * (c - c0) + 1] = sums[2 * c + 1];
    for (int64_t i = 0; i < n; i++)
      for (int64_t c = c0; c < c1; c++) {
        const int64_t o = (i * ch + c) * size;
        grad_sums<M>(x + o, M == kMaskY ? y + o : nullptr, gy + o, size, mean[c], M == kMaskX ? scale[c] : 0.0f,
                     M == kMaskX ? shift[c] : 0.0f, &local[2 * (c - c0)], &local[2 * (c - c0) + 1]);
      }
    for (int64_t c = c0; c < c1; c++) sums[2 * c] = local[2 * (c - c0)], sums[2 * c + 1] = local[2 * (c - c0) + 1];
  }
}

// batchNormBackward's sums over channels [b, e), image by image as moments_part reads them:
// sums[2c] += Σ g, sums[2c + 1] += Σ g·(x - mean). scale and shift: see mask_of.
LTH_NORM_TARGET static void grad_sums_part(const float* x, const float* y, const float* gy, const float* mean,
                                           const float* scale, const float* shift, int64_t n, int64_t ch, int64_t size,
                                           int64_t b, int64_t e, bool relu, double* sums) {
  switch (mask_of(relu, y)) {
    case kMaskY: grad_sums_planes<kMaskY>(x, y, gy, mean, scale, shift, n, ch, size, b, e, sums); break;
    case kMaskX: grad_sums_planes<kMaskX>(x, y, gy, mean, scale, shift, n, ch, size, b, e, sums); break;
    default: grad_sums_planes<kNoMask>(x, y, gy, mean, scale, shift, n, ch, size, b, e, sums); break;
  }
}

template <int M>
LTH_NORM_TARGET static void grad_in_planes(const float* x, const float* y, const float* gy, float* gx, float* gr,
                                           const float* mean, const float* scale, const float* shift, const float* coef,
                                           int64_t ch, int64_t size, int64_t b, int64_t e, bool accX, bool accR) {
  for (int64_t p = b; p < e; p++) {
    const int64_t c = p % ch, o = p * size;
    const float* f = coef + 3 * c;
    grad_in_plane<M>(x + o, M == kMaskY ? y + o : nullptr, gy + o, gx ? gx + o : nullptr, gr ? gr + o : nullptr, size,
                     mean[c], M == kMaskX ? scale[c] : 0.0f, M == kMaskX ? shift[c] : 0.0f, f[0], f[1], f[2], accX,
                     accR);
  }
}

// batchNormBackward's gradients over planes [b, e), in memory order; coef holds each channel's
// k, mg and mgx.
LTH_NORM_TARGET static void grad_in_part(const float* x, const float* y, const float* gy, float* gx, float* gr,
                                         const float* mean, const float* scale, const float* shift, const float* coef,
                                         int64_t ch, int64_t size, int64_t b, int64_t e, bool relu, bool accX,
                                         bool accR) {
  switch (mask_of(relu, y)) {
    case kMaskY: grad_in_planes<kMaskY>(x, y, gy, gx, gr, mean, scale, shift, coef, ch, size, b, e, accX, accR); break;
    case kMaskX: grad_in_planes<kMaskX>(x, y, gy, gx, gr, mean, scale, shift, coef, ch, size, b, e, accX, accR); break;
    default: grad_in_planes<kNoMask>(x, y, gy, gx, gr, mean, scale, shift, coef, ch, size, b, e, accX, accR); break;
  }
}

// meanPlanes over planes [b, e).
LTH_NORM_TARGET static void mean_part(const float* x, float* out, int64_t size, int64_t b, int64_t e) {
  for (int64_t p = b; p < e; p++) out[p] = (float)(sum_plane(x + p * size, size) / (double)size);
}

constexpr NormKernels kTable = {moments_part, affine_part, grad_sums_part, grad_in_part, mean_part};
