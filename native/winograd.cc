// winograd.cc: conv3x3, conv3x3Pool, conv3x3WeightGrad and conv3x3ThroughConv2d, the
// stride-1 3x3 convolution of the native backend, its weight gradient, and its input
// gradient taken on through a first layer's backward pass (the Backend methods of the same names;
// src/backend/backend.ts documents them and src/backend/reference.ts is the oracle), by
// Winograd's F(2x2, 3x3) or F(4x4, 3x3) algorithm (the caller's choice of tile).
//
// F(2x2, 3x3), which F(4x4) follows with 6x6 patches and 36 entries: each 2x2 block of
// outputs (a tile) is computed from the 4x4 input patch under it:
// with V = Bᵀ·d·B per input channel and U = G·g·Gᵀ per filter, the 16 entries of
// M = Σ_c U ⊙ V are 16 independent products U_e [out x in] · V_e [in x tiles], run on
// the GEMM of the path in use; Y = Aᵀ·M·A. That is 16 multiplications per tile and
// channel pair instead of im2col's 36, and there are no columns to write or (for the
// input gradient) to fold back.
//
// Tiles are taken a block of tile rows at a time (enough that the GEMMs are wide, few
// enough that V and M stay in L2). Blocks are fixed by the geometry and the pool runs
// whole blocks; every tile's result goes through the same instructions whichever
// thread runs its block, so results do not depend on the thread count.
//
// Rounding differs from the direct sum (the transforms add and subtract inputs first),
// by a few units in the last place of the largest terms. A NaN or infinity in an input
// patch reaches all four outputs of its tile, not only those whose 3x3 window holds it.

#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "bindings.h"
#include "conv2d.h"
#include "dispatch.h"
#include "ftz.h"
#include "napi_args.h"
#include "parallel.h"
#include "pool.h"

namespace {

using lth::gK;

struct Job {
  const float* x;
  const float* u;  // E entries [cout][cin], each packed for GemmArgs::aPacked, ustride floats apart
  int64_t ustride;
  float* out;
  int64_t n, cin, cout, h, w, pad, oh, ow, th, tw;
  int64_t rowsPerBlock, tileRows;  // tile rows per block, and in all (n*th)
  bool accumulate;
  int tile;  // outputs per tile side: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3)
  const float* bias = nullptr;  // [cout], added to each output channel after the sum (or null)
  bool relu = false;            // max(0, ·) after that
  // With pooled (outH and outW multiples of the tile): 2x2 max pooling of the stored values
  // into pooled [n][cout][outH/2][outW/2] and each window's argmax, in place of `out`.
  float* pooled = nullptr;
  uint8_t* argmax = nullptr;
  // With `through` (conv3x3ThroughConv2d), the output is the output gradient of a first
  // layer's im2col convolution: it is not stored but goes on, an image at a time while in
  // cache, into that layer's weight and bias gradients. Blocks are then whole images.
  const struct Through* through = nullptr;
  int64_t entries() const { return (int64_t)(tile + 2) * (tile + 2); }  // E, the transform's size
};

// The first layer of conv3x3ThroughConv2d: its backward job (ConvJob, no input gradient),
// and the floats of one block's weight-gradient partial (block blk's at conv->partials +
// blk * wsize).
struct Through {
  const lth::ConvJob* conv;
  int64_t wsize;
};

// n floats of v, from a 64-byte boundary (GemmArgs::bPanel's, and the vector loads').
float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n + 16) v.resize(n + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~(uintptr_t)63);
}

// The distance in floats between consecutive entries e of V, M or gM (rows x T floats
// each): whole cache lines, an odd number of them, so that the transforms' 16 or 36
// streams (one per entry) fall into different L1 sets. rows*T itself is often a multiple
// of 4 KiB, and then every stream's loads and stores contend for one set.
int64_t entry_stride(int64_t rows, int64_t T) {
  int64_t lines = (rows * T + 15) / 16;
  if (lines % 2 == 0) lines++;
  return lines * 16;
}

// Asks for the n floats at p (the next channel's rows) to be brought into cache.
inline void prefetch_rows(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

// G·g·Gᵀ of 3x3 filters, for F(2x2, 3x3) (G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1])
// or F(4x4, 3x3) (G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12
// 1/6; 0 0 1]). g_times takes G times the 3-vectors (a[k], b[k], d[k]) of n filters into
// r[i*rs + k] (i < Alpha): a loop over the filters, which vectorises (F(4x4)'s divisions
// were most of a 256-channel call's weight transform one filter at a time).
// Divisions, not products by the rounded 1/6 and 1/24: a rounded reciprocal scales every
// value by the same relative error, where a division rounds each value on its own.
template <int Alpha>
void g_times(const float* __restrict a, const float* __restrict b, const float* __restrict d, float* __restrict r,
             int64_t rs, int64_t n) {
  for (int64_t k = 0; k < n; k++) {
    if (Alpha == 4) {
      r[k] = a[k];
      r[rs + k] = 0.5f * (a[k] + b[k] + d[k]);
      r[2 * rs + k] = 0.5f * (a[k] - b[k] + d[k]);
      r[3 * rs + k] = d[k];
    } else {
      r[k] = 0.25f * a[k];
      r[rs + k] = -(a[k] + b[k] + d[k]) / 6.0f;
      r[2 * rs + k] = -(a[k] - b[k] + d[k]) / 6.0f;
      r[3 * rs + k] = (a[k] + 2.0f * b[k] + 4.0f * d[k]) / 24.0f;
      r[4 * rs + k] = (a[k] - 2.0f * b[k] + 4.0f * d[k]) / 24.0f;
      r[5 * rs + k] = d[k];
    }
  }
}

// U[e][o][c] = (G·g·Gᵀ)[e] for the filter g of output o and input c; with flip the
// filter is the layer's weight [c][o] turned by 180 degrees (the input gradient). The
// filters go through a small buffer a chunk of kChunk at a time: the E rows of U lie
// cout*cin floats apart, often a multiple of the page size, and storing to all of them
// per filter would have every store evict another from the same cache set. Chunks are
// independent, so they are shared out over the pool.
constexpr int64_t kChunk = 64;

template <int Alpha>
void transform_weight_chunk(const float* wt, float* u, int64_t cin, int64_t cout, bool flip, int64_t p0) {
  constexpr int E = Alpha * Alpha;
  const int64_t oc = cout * cin, len = oc - p0 < kChunk ? oc - p0 : kChunk;
  float g[9][kChunk], t[Alpha * 3][kChunk], buf[E][kChunk];  // the filters, G·g, G·g·Gᵀ
  for (int64_t k = 0; k < len; k++) {
    const int64_t o = (p0 + k) / cin, c = (p0 + k) % cin;
    for (int i = 0; i < 3; i++)
      for (int jj = 0; jj < 3; jj++)
        g[i * 3 + jj][k] = flip ? wt[(c * cout + o) * 9 + (2 - i) * 3 + (2 - jj)] : wt[(o * cin + c) * 9 + i * 3 + jj];
  }
  for (int jj = 0; jj < 3; jj++) g_times<Alpha>(g[jj], g[3 + jj], g[6 + jj], t[jj], 3 * kChunk, len);  // t[i*3 + jj]
  for (int i = 0; i < Alpha; i++) g_times<Alpha>(t[i * 3], t[i * 3 + 1], t[i * 3 + 2], buf[i * Alpha], kChunk, len);
  for (int e = 0; e < E; e++) std::memcpy(u + e * oc + p0, buf[e], (size_t)len * sizeof(float));
}

template <int Alpha>
void transform_weights_t(const float* wt, float* u, int64_t cin, int64_t cout, bool flip) {
  const int64_t oc = cout * cin;
  lth::parallel_units((oc + kChunk - 1) / kChunk, oc * Alpha * Alpha, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; chunk++) transform_weight_chunk<Alpha>(wt, u, cin, cout, flip, chunk * kChunk);
  });
}

void transform_weights(const float* wt, float* u, int64_t cin, int64_t cout, bool flip, int tile) {
  if (tile == 4)
    transform_weights_t<6>(wt, u, cin, cout, flip);
  else
    transform_weights_t<4>(wt, u, cin, cout, flip);
}

// The input transform for padding 1 and a width that is a whole number of tiles (tw =
// w/tile; Kernels::winoInRows/winoInCols and their F(4x4) forms): no phase split, and the
// column pass runs over all of a channel's tiles in the block at once, where winoIn's
// loops are one row of tiles long (2 to 16 on 8x8 to 32x32 images, too short to fill
// the vector lanes).
bool rows_first(const Job& j) { return j.pad == 1 && j.w % j.tile == 0; }

// A block's tiles transformed: entry e of channel c and tile t at v[e*vs + c*tiles + t]
// (pstride 0) or, each entry the forward product's op(B) in the GEMM's column panels
// (GemmArgs::bPanel = pstride), at v[e*vs + (t / nr)*pstride + c*nr + t % nr].
struct Transformed {
  const float* v;
  int64_t tiles, vs, pstride;
};

// The panel stride for cin channels: a cache line more than they fill, so that a
// channel's panels do not fall a multiple of 4 KiB apart (64 channels of 16 floats
// would), where the transform's stores to them would contend for one L1 set.
int64_t panel_stride(int64_t cin) { return cin * gK->nr + 16; }

// Whether the forward product reads V in panels (Transformed): for the rows-first F(2x2)
// transform up to 64 input channels, where it was measured faster (forward passes at
// batch 60 and 128, AVX2: 16 to 64 channels 0.93-0.96 of the time with the GEMM packing
// V, 128 channels 0.98-1.01, 256 and 512 channels up to 1.04). F(4x4)'s column
// transform, which reads its tiles' 6 columns 4 apart, was 3-4% slower overall written a
// panel at a time, more than the packing it spares.
bool v_in_panels(const Job& j) { return rows_first(j) && j.tile == 2 && j.cin <= 64; }

Transformed input_transform_rows(const Job& j, int64_t blk, bool packed) {
  thread_local std::vector<float> vbuf, gbuf, zbuf;
  const int64_t q0 = blk * j.rowsPerBlock;
  const int64_t q1 = q0 + j.rowsPerBlock < j.tileRows ? q0 + j.rowsPerBlock : j.tileRows;
  const int64_t T = (q1 - q0) * j.tw, gs = (q1 - q0) * j.w, side = j.tile + 2;
  const int64_t nr = gK->nr, E = side * side, pstride = packed ? panel_stride(j.cin) : 0;
  const int64_t vs = entry_stride(packed ? (T + nr - 1) / nr * pstride : j.cin * T, 1);
  float* V = grow(vbuf, (size_t)(E * vs));
  float* G = grow(gbuf, (size_t)(side * gs));
  if (zbuf.size() < (size_t)j.w) zbuf.assign((size_t)j.w, 0.0f);
  const float* Z = zbuf.data();
  const auto rows = j.tile == 4 ? gK->winoIn4Rows : gK->winoInRows;
  for (int64_t c = 0; c < j.cin; c++) {
    for (int64_t q = q0; q < q1;) {
      const int64_t img = q / j.th, ty0 = q % j.th;
      const int64_t ty1 = (img + 1) * j.th < q1 ? j.th : q1 - img * j.th;
      const float* plane = j.x + (img * j.cin + c) * j.h * j.w;
      int64_t y0 = j.tile * ty0 - 1, y1 = j.tile * ty1 + 1;
      if (y0 < 0) y0 = 0;
      if (y1 > j.h) y1 = j.h;
      if (c + 1 < j.cin) prefetch_rows(plane + j.h * j.w + y0 * j.w, (y1 - y0) * j.w);
      rows(plane, j.w, j.h, ty0, ty1, Z, G + (q - q0) * j.w, gs);
      q = img * j.th + ty1;
    }
    if (j.tile == 4)
      gK->winoIn4Cols(G, gs, j.tw, T, V + c * T, vs);
    else
      gK->winoInCols(G, gs, j.tw, T, V + c * (packed ? nr : T), vs, pstride);
  }
  // The last panel's columns past T: never stored to C, zeroed so that they hold numbers.
  if (const int64_t used = packed ? T % nr : 0)
    for (int64_t e = 0; e < E; e++)
      for (int64_t c = 0; c < j.cin; c++)
        std::memset(V + e * vs + T / nr * pstride + c * nr + used, 0, (size_t)(nr - used) * sizeof(float));
  return {V, T, vs, pstride};
}

// The input transform of block blk's tiles: V[e][c][t] (E x cin x T), or with `packed`
// (only where v_in_panels) each entry as the forward product's op(B) in the GEMM's
// column panels (Transformed).
Transformed input_transform(const Job& j, int64_t blk, bool packed) {
  if (rows_first(j)) return input_transform_rows(j, blk, packed);
  thread_local std::vector<float> vbuf, qbuf, hbuf;
  const int64_t t = j.tile, q0 = blk * j.rowsPerBlock;
  const int64_t q1 = q0 + j.rowsPerBlock < j.tileRows ? q0 + j.rowsPerBlock : j.tileRows;
  const int64_t T = (q1 - q0) * j.tw, vs = entry_stride(j.cin, T);
  float* V = grow(vbuf, (size_t)(j.entries() * vs));
  // The zero-padded plane P (image pixel (y, xx) at P[pad + y][pad + xx], th + 1 groups of
  // `tile` rows by tw + 1 groups of `tile` columns: every tile's patch), split by row and
  // column phase mod `tile` into tile² planes of qs floats (see Kernels::winoIn and
  // winoIn4). Its border stays zero.
  const int64_t ld = j.tw + 1, qs = (j.th + 1) * ld;
  float* Q = grow(qbuf, (size_t)(t * t * qs));
  float* H = grow(hbuf, (size_t)((t + 2) * t * (j.rowsPerBlock < j.th ? j.rowsPerBlock + 1 : j.th + 1) * j.tw));
  std::memset(Q, 0, (size_t)(t * t * qs) * sizeof(float));
  const int64_t prows = t * (j.th + 1);
  const auto split = t == 4 ? gK->winoSplitRows4 : gK->winoSplitRows;
  const auto in = t == 4 ? gK->winoIn4 : gK->winoIn;

  for (int64_t q = q0; q < q1;) {
    const int64_t img = q / j.th, ty0 = q % j.th;
    const int64_t ty1 = (img + 1) * j.th < q1 ? j.th : q1 - img * j.th;  // this image's tile rows [ty0, ty1)
    // Only the input rows these tile rows read: P rows t*ty0 .. t*ty1 + 1.
    int64_t y0 = t * ty0 - j.pad, y1 = t * ty1 + 2 - j.pad;
    if (y0 < 0) y0 = 0;
    if (y1 > j.h) y1 = j.h;
    if (y1 > prows - j.pad) y1 = prows - j.pad;
    for (int64_t c = 0; c < j.cin; c++) {
      const float* plane = j.x + (img * j.cin + c) * j.h * j.w;
      if (c + 1 < j.cin) prefetch_rows(plane + j.h * j.w + y0 * j.w, (y1 - y0) * j.w);
      split(plane + y0 * j.w, j.w, j.w, y1 - y0, j.pad + y0, j.pad, Q, qs, ld);
      in(Q, qs, ld, j.tw, ty0, ty1, H, V + c * T + (img * j.th + ty0 - q0) * j.tw, vs);
    }
    q = img * j.th + ty1;
  }

  return {V, T, vs, 0};
}

// Where tile row ty of image img and output channel o pools to (Job::pooled, argmax): its
// tile/2 pooled rows of tw*tile/2 values.
int64_t pooled_at(const Job& j, int64_t img, int64_t o, int64_t ty) {
  const int64_t half = j.tile / 2;
  return ((img * j.cout + o) * j.th + ty) * half * j.tw * half;
}

// Asks for output channel o's rows of tile rows [q0, q1) to be brought into cache for writing.
void prefetch_out(const Job& j, int64_t q0, int64_t q1, int64_t o) {
  for (int64_t q = q0; q < q1;) {
    const int64_t img = q / j.th, ty0 = q % j.th;
    const int64_t ty1 = (img + 1) * j.th < q1 ? j.th : q1 - img * j.th;
    if (j.pooled) {
      const float* p = j.pooled + pooled_at(j, img, o, ty0);
      const int64_t count = (ty1 - ty0) * j.tw * (j.tile / 2) * (j.tile / 2);
      for (int64_t i = 0; i < count; i += 16) __builtin_prefetch(p + i, 1);
    } else {
      const int64_t r0 = j.tile * ty0, r1 = j.tile * ty1 < j.oh ? j.tile * ty1 : j.oh;
      const float* y = j.out + ((img * j.cout + o) * j.oh + r0) * j.ow;
      for (int64_t i = 0; i < (r1 - r0) * j.ow; i += 16) __builtin_prefetch(y + i, 1);
    }
    q = img * j.th + ty1;
  }
}

void run_block(const Job& j, int64_t blk, float* gemmScratch) {
  thread_local std::vector<float> mbuf, obuf;
  const Transformed in = input_transform(j, blk, v_in_panels(j));
  const int64_t T = in.tiles, q0 = blk * j.rowsPerBlock, q1 = q0 + T / j.tw, E = j.entries();
  const int64_t ms = entry_stride(j.cout, T);
  float* M = grow(mbuf, (size_t)(E * ms));

  for (int64_t e = 0; e < E; e++) {
    lth::GemmArgs g{j.u + e * j.ustride, in.v + e * in.vs, M + e * ms, j.cout, j.cin, T, false, false, false};
    g.aPacked = true;
    g.bPanel = in.pstride;
    gK->gemm(g, 0, j.cout, 0, T, gemmScratch);
  }

  // Each output channel's outputs, transformed, then stored one image's run of tile rows
  // at a time (its output rows are consecutive in the plane).
  float* O = grow(obuf, (size_t)(j.tile * j.tile * T));
  const auto out = j.tile == 4 ? gK->winoOut4 : gK->winoOut;
  const auto store = j.tile == 4 ? gK->winoStore4 : gK->winoStore;
  // Through a first layer, the block's images go to a buffer of the thread ([image - img0][o][row]).
  thread_local std::vector<float> tbuf;
  const int64_t img0 = j.through ? q0 / j.th : 0, plane = j.oh * j.ow;
  float* dst = j.through ? grow(tbuf, (size_t)((q1 - q0) / j.th * j.cout * plane)) : j.out;
  for (int64_t o = 0; o < j.cout; o++) {
    if (o + 1 < j.cout && !j.through) prefetch_out(j, q0, q1, o + 1);
    const float* bias = j.bias ? j.bias + o : nullptr;
    out(M + o * T, ms, T, O);
    for (int64_t q = q0; q < q1;) {
      const int64_t img = q / j.th, ty0 = q % j.th;
      const int64_t ty1 = (img + 1) * j.th < q1 ? j.th : q1 - img * j.th;
      const int64_t r0 = j.tile * ty0, r1 = j.tile * ty1 < j.oh ? j.tile * ty1 : j.oh;
      if (j.pooled) {
        const int64_t at = pooled_at(j, img, o, ty0);
        if (j.tile == 4)
          gK->winoStorePool4(O + (q - q0) * j.tw, T, ty1 - ty0, j.tw, j.pooled + at, j.argmax + at, bias, j.relu);
        else
          gK->winoStorePool(O + (q - q0) * j.tw, T, (ty1 - ty0) * j.tw, j.pooled + at, j.argmax + at, bias, j.relu);
      } else {
        store(O + (q - q0) * j.tw, T, j.ow, r1 - r0, dst + ((img - img0) * j.cout + o) * plane + r0 * j.ow,
              j.accumulate, bias, j.relu);
      }
      q = img * j.th + ty1;
    }
  }
  if (!j.through) return;
  const lth::ConvJob& c = *j.through->conv;
  float* partial = c.partials ? c.partials + blk * j.through->wsize : nullptr;
  for (int64_t img = img0; img < q1 / j.th; img++)
    lth::conv2d_grad_image(c, img, dst + (img - img0) * j.cout * plane, partial, img > img0, gemmScratch);
}

// The weight gradient: with gM = A·gY·Aᵀ per tile of the output gradient (2x2 or 4x4, 0
// for outputs past the edge; gM is 4x4 or 6x6), gU_e = Σ_t gM_e[o][t] · V_e[c][t] (E
// GEMMs with k = the tiles) and gW = Gᵀ·gU·G. The tiles' sum runs in `groups` fixed groups of whole
// blocks, each group's blocks in order into its own partial gU, and the partials are
// added in group order: the grouping depends on the geometry only, not on the threads.
struct GradJob {
  Job j;
  const float* gy;
  float* partials;  // groups x E entries gU_e [cout][cin], entry_stride(cout, cin) floats apart
  int64_t blocks;
  int groups;
};

// GM[e][o][t] (E x cout x T): the output gradient's tiles (tile rows [q0, q1)) transformed.
void grad_out_transform(const Job& j, const float* gy, int64_t q0, int64_t q1, int64_t T, float* GM) {
  thread_local std::vector<float> rbuf;
  const bool edges = j.oh % j.tile != 0 || j.ow % j.tile != 0;
  if (!edges) {
    // Whole tiles: rows first, then one loop over the block's tiles per row of A·gY (the
    // split's loops would be one row of tiles long).
    const int64_t gs = (q1 - q0) * j.ow, side = j.tile + 2;
    float* G = grow(rbuf, (size_t)(side * gs));
    const auto rows = j.tile == 4 ? gK->winoGradOut4Rows : gK->winoGradOutRows;
    const auto cols = j.tile == 4 ? gK->winoGradOut4Cols : gK->winoGradOutCols;
    for (int64_t o = 0; o < j.cout; o++) {
      for (int64_t q = q0; q < q1;) {
        const int64_t img = q / j.th, ty0 = q % j.th;
        const int64_t ty1 = (img + 1) * j.th < q1 ? j.th : q1 - img * j.th;
        const float* y = gy + ((img * j.cout + o) * j.oh + j.tile * ty0) * j.ow;
        if (o + 1 < j.cout) prefetch_rows(y + j.oh * j.ow, j.tile * (ty1 - ty0) * j.ow);
        rows(y, j.ow, ty1 - ty0, G + (q - q0) * j.ow, gs);
        q = img * j.th + ty1;
      }
      cols(G, gs, T, GM + o * T, entry_stride(j.cout, T));
    }
    return;
  }
  // R[(tile*i + jj)*T + t] = gY[tile*ty + i][tile*tx + jj] for tile t = (ty, tx), 0 past the
  // edges (only then does R need clearing: otherwise the split writes all of it).
  const int64_t tt = (int64_t)j.tile * j.tile;
  float* R = grow(rbuf, (size_t)(tt * T));
  for (int64_t o = 0; o < j.cout; o++) {
    if (edges) std::memset(R, 0, (size_t)(tt * T) * sizeof(float));
    for (int64_t q = q0; q < q1;) {
      const int64_t img = q / j.th, ty0 = q % j.th;
      const int64_t ty1 = (img + 1) * j.th < q1 ? j.th : q1 - img * j.th;
      const int64_t r0 = j.tile * ty0, r1 = j.tile * ty1 < j.oh ? j.tile * ty1 : j.oh;
      const float* g = gy + ((img * j.cout + o) * j.oh + r0) * j.ow;
      float* r = R + (q - q0) * j.tw;
      if (j.tile == 4)
        gK->winoSplitRows4(g, j.ow, j.ow, r1 - r0, 0, 0, r, T, j.tw);
      else
        gK->winoSplitRows(g, j.ow, j.ow, r1 - r0, 0, 0, r, T, j.tw);
      q = img * j.th + ty1;
    }
    if (j.tile == 4)
      gK->winoGradOut4(R, T, GM + o * T, entry_stride(j.cout, T));
    else
      gK->winoGradOut(R, R + T, R + 2 * T, R + 3 * T, T, GM + o * T, entry_stride(j.cout, T));
  }
}

// Adds block blk's products to gu (overwrites gu's entries with them when `first`).
void grad_block(const Job& j, const float* gy, int64_t blk, float* gu, bool first, float* gemmScratch) {
  thread_local std::vector<float> gbuf;
  const Transformed in = input_transform(j, blk, false);
  const float* V = in.v;
  const int64_t T = in.tiles, q0 = blk * j.rowsPerBlock, E = j.entries();
  const int64_t vs = in.vs, gs = entry_stride(j.cout, T);
  float* GM = grow(gbuf, (size_t)(E * gs));
  grad_out_transform(j, gy, q0, q0 + T / j.tw, T, GM);
  const auto product = lth::nt_product(j.cout, j.cin, T);
  for (int64_t e = 0; e < E; e++)
    product(lth::GemmArgs{GM + e * gs, V + e * vs, gu + e * entry_stride(j.cout, j.cin), j.cout, T, j.cin, false,
                           true, !first},
             0, j.cout, 0, j.cin, gemmScratch);
}

void grad_group(void* ctx, int g, float* scratch) {
  const GradJob& gj = *static_cast<const GradJob*>(ctx);
  const int64_t size = gj.j.entries() * entry_stride(gj.j.cout, gj.j.cin);
  float* gu = gj.partials + g * size;
  const int64_t b0 = gj.blocks * g / gj.groups, b1 = gj.blocks * (g + 1) / gj.groups;
  for (int64_t b = b0; b < b1; b++) grad_block(gj.j, gj.gy, b, gu, b == b0, scratch);
}

void block_part(void* ctx, int part, float* scratch) { run_block(*static_cast<const Job*>(ctx), part, scratch); }

constexpr int64_t kMinBlocks = 8, kMinTiles = 48, kF2Tiles = 256, kF4ConvTiles = 64;

// The tiles and blocks of a call: enough tiles per block for wide GEMMs, few enough
// that V (E*cin*T floats) and M stay near L2's size. `weights`: for the weight gradient.
Job make_job(const float* x, const float* u, float* out, int64_t n, int64_t cin, int64_t cout, int64_t h, int64_t w,
             int64_t pad, bool accumulate, int tile, bool weights) {
  const int64_t oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
  Job j{x, u, 0, out, n, cin, cout, h, w, pad, oh, ow, (oh + tile - 1) / tile, (ow + tile - 1) / tile, 0, 0,
        accumulate, tile};
  j.tileRows = n * j.th;
  const int64_t widest = cin > cout ? cin : cout;
  int64_t target = 16384 * 16 / j.entries() / widest;
  // F(2x2) runs fastest at about 256 tiles a block whatever the channels (measured at 16,
  // 32 and 64: 16 and 32 channels 7-10% slower at 1024 and 512). F(4x4)'s weight gradient
  // keeps the target above (at 64 or 48 tiles it was 2-5% slower); its convolutions (input
  // gradients) run fastest at 64 tiles whatever the channels on AVX2, 1-12% faster than at
  // the 113 to 455 that the target gives 16 to 64 channels; AVX-512 runs up to 64 channels
  // fastest at 128 (Kernels::wino4NarrowTiles; docs/performance.md).
  if (tile == 2 && target > kF2Tiles) target = kF2Tiles;
  if (tile == 4 && !weights) target = widest <= 64 ? gK->wino4NarrowTiles : kF4ConvTiles;
  if (target < 64) target = 64;
  j.rowsPerBlock = target / j.tw < 1 ? 1 : target / j.tw;
  // At least kMinBlocks blocks where that leaves each kMinTiles tiles: a call of a few big
  // blocks shares out unevenly (5 blocks on 2 threads wait for a third of the call on one).
  const int64_t fewer = (j.tileRows + kMinBlocks - 1) / kMinBlocks;
  if (fewer < j.rowsPerBlock && fewer * j.tw >= kMinTiles) j.rowsPerBlock = fewer;
  return j;
}

// Whether the tile size and a padded h x w image suit a 3x3 Winograd call; false with the
// failure recorded in `a` otherwise.
bool geometry_fits(lth::ArgReader& a, int64_t tile, int64_t h, int64_t w, int64_t pad) {
  if (tile != 2 && tile != 4) {
    a.fail(true, "tile must be 2 or 4, got %lld", (long long)tile);
    return false;
  }
  if (h + 2 * pad < 3 || w + 2 * pad < 3) {
    a.fail(true, "a 3x3 kernel with padding %lld does not fit a %lldx%lld image", (long long)pad, (long long)h,
           (long long)w);
    return false;
  }
  return true;
}

// Runs job j (all but its filters set) with the filters wt (flipped with `flip`).
void run_conv(Job& j, const float* wt, bool flip) {
  thread_local std::vector<float> ubuf, pbuf;
  const int64_t E = j.entries(), cin = j.cin, cout = j.cout;
  float* u = grow(ubuf, (size_t)(E * cout * cin));
  transform_weights(wt, u, cin, cout, flip, j.tile);
  // Every block's products share U: packed once here, not once per block.
  const int64_t ustride = (cout + gK->mr - 1) / gK->mr * gK->mr * cin;
  float* up = grow(pbuf, (size_t)(E * ustride));
  for (int64_t e = 0; e < E; e++) gK->packA(u + e * cout * cin, cout, cin, false, 0, cout, up + e * ustride);
  j.u = up;
  j.ustride = ustride;
  const int64_t blocks = (j.tileRows + j.rowsPerBlock - 1) / j.rowsPerBlock;
  float* scratch = lth::caller_scratch();
  const int threads = lth::thread_count();
  if (threads > 1 && blocks > 1 && blocks < 65536 && lth::run_parts_scratch(threads, (int)blocks, block_part, &j, scratch))
    return;
  for (int64_t b = 0; b < blocks; b++) run_block(j, b, scratch);
}

// conv3x3(x, weight, out, n, inChannels, outChannels, height, width, pad, flip, accumulate, tile, bias, relu)
using lth::ArgSpec;
namespace arg = lth::arg;
using u128 = unsigned __int128;
constexpr ArgSpec kConv3x3Args[] = {arg::f32("x"),        arg::f32("weight"),      arg::f32("out"),
                                    arg::dim("n"),        arg::dim("inChannels"),  arg::dim("outChannels"),
                                    arg::dim("height"),   arg::dim("width"),       arg::dim("pad"),
                                    arg::flag("flip"),    arg::flag("accumulate"),  arg::dim("tile"),
                                    arg::f32_or_null("bias"), arg::flag("relu")};

napi_value Conv3x3(napi_env env, napi_callback_info info) {
  lth::Args<14> a(env, info, "conv3x3", kConv3x3Args);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *wt = a[1].f32();
  float* out = a[2].f32();
  const int64_t n = a[3].dim(), cin = a[4].dim(), cout = a[5].dim(), h = a[6].dim(), w = a[7].dim(), pad = a[8].dim();
  const bool flip = a[9].flag, accumulate = a[10].flag;
  const int64_t tile = a[11].dim();
  const float* bias = a[12].present ? a[12].f32() : nullptr;
  const bool relu = a[13].flag;
  if (!geometry_fits(a, tile, h, w, pad)) return nullptr;
  const int64_t oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
  a.need("x", a[0].len, (u128)n * cin * h * w, "n*inChannels*height*width");
  a.need("weight", a[1].len, (u128)cin * cout * 9, "inChannels*outChannels*9");
  a.need("out", a[2].len, (u128)n * cout * oh * ow, "n*outChannels*outH*outW");
  if (bias) a.need("bias", a[12].len, (u128)cout, "outChannels");
  if (!a.ok()) return nullptr;
  if (lth::overlaps(out, (size_t)(n * cout * oh * ow) * 4, x, (size_t)(n * cin * h * w) * 4)) {
    a.fail(true, "out must not share memory with x");
    return nullptr;
  }
  if (n == 0 || cout == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  if (cin == 0) {
    if (!accumulate) std::memset(out, 0, (size_t)(n * cout * oh * ow) * sizeof(float));
    if (bias || relu)
      for (int64_t p = 0; p < n * cout; p++)
        for (int64_t i = 0; i < oh * ow; i++) {
          float v = out[p * oh * ow + i];
          if (bias) v += bias[p % cout];
          out[p * oh * ow + i] = relu && v < 0.0f ? 0.0f : v;
        }
    return lth::undefined_value(env);
  }
  Job j = make_job(x, nullptr, out, n, cin, cout, h, w, pad, accumulate, (int)tile, false);
  j.bias = bias;
  j.relu = relu;
  run_conv(j, wt, flip);
  return lth::undefined_value(env);
}

// conv3x3Pool(x, weight, pooled, argmax, n, inChannels, outChannels, height, width, pad, tile, bias, relu)
constexpr ArgSpec kConv3x3PoolArgs[] = {arg::f32("x"),           arg::f32("weight"),     arg::f32("pooled"),
                                        arg::u8("argmax"),       arg::dim("n"),          arg::dim("inChannels"),
                                        arg::dim("outChannels"), arg::dim("height"),     arg::dim("width"),
                                        arg::dim("pad"),         arg::dim("tile"),       arg::f32_or_null("bias"),
                                        arg::flag("relu")};

napi_value Conv3x3Pool(napi_env env, napi_callback_info info) {
  lth::Args<13> a(env, info, "conv3x3Pool", kConv3x3PoolArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *wt = a[1].f32();
  float* pooled = a[2].f32();
  uint8_t* argmax = a[3].u8();
  const int64_t n = a[4].dim(), cin = a[5].dim(), cout = a[6].dim(), h = a[7].dim(), w = a[8].dim(), pad = a[9].dim();
  const int64_t tile = a[10].dim();
  const float* bias = a[11].present ? a[11].f32() : nullptr;
  const bool relu = a[12].flag;
  if (!geometry_fits(a, tile, h, w, pad)) return nullptr;
  const int64_t oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
  if (oh % 2 != 0 || ow % 2 != 0) {
    a.fail(true, "2x2 pooling needs an even output, got %lldx%lld", (long long)oh, (long long)ow);
    return nullptr;
  }
  if (oh % tile != 0 || ow % tile != 0) {
    a.fail(true, "pooling F(4x4) tiles needs an output whose sides are multiples of 4, got %lldx%lld", (long long)oh,
           (long long)ow);
    return nullptr;
  }
  const int64_t size = n * cout * (oh / 2) * (ow / 2);
  a.need("x", a[0].len, (u128)n * cin * h * w, "n*inChannels*height*width");
  a.need("weight", a[1].len, (u128)cin * cout * 9, "inChannels*outChannels*9");
  a.need("pooled", a[2].len, (u128)size, "n*outChannels*(outH/2)*(outW/2)");
  a.need("argmax", a[3].len, (u128)size, "n*outChannels*(outH/2)*(outW/2)");
  if (bias) a.need("bias", a[11].len, (u128)cout, "outChannels");
  if (!a.ok()) return nullptr;
  if (lth::overlaps(pooled, (size_t)size * 4, x, (size_t)(n * cin * h * w) * 4)) {
    a.fail(true, "pooled must not share memory with x");
    return nullptr;
  }
  if (n == 0 || cout == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  if (cin == 0) {
    // Every output is its channel's bias (or 0), the first of its window the maximum.
    const int64_t plane = (oh / 2) * (ow / 2);
    for (int64_t p = 0; p < n * cout; p++) {
      float v = bias ? 0.0f + bias[p % cout] : 0.0f;
      if (relu && v < 0.0f) v = 0.0f;
      for (int64_t i = 0; i < plane; i++) pooled[p * plane + i] = v;
    }
    std::memset(argmax, 0, (size_t)size);
    return lth::undefined_value(env);
  }
  Job j = make_job(x, nullptr, nullptr, n, cin, cout, h, w, pad, false, (int)tile, false);
  j.bias = bias;
  j.relu = relu;
  j.pooled = pooled;
  j.argmax = argmax;
  run_conv(j, wt, false);
  return lth::undefined_value(env);
}

// gW[o][c] += Gᵀ·gU·G, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] (F(2x2, 3x3)); gU's
// entries lie oc floats apart.
void add_filter_grads2(const float* gu, int64_t oc, float* gw, int64_t cin, int64_t cout) {
  for (int64_t o = 0; o < cout; o++) {
    for (int64_t c = 0; c < cin; c++) {
      float u[4][4];
      for (int e = 0; e < 16; e++) u[e / 4][e % 4] = gu[e * oc + o * cin + c];
      float t[3][4];
      for (int k = 0; k < 4; k++) {
        t[0][k] = u[0][k] + 0.5f * (u[1][k] + u[2][k]);
        t[1][k] = 0.5f * (u[1][k] - u[2][k]);
        t[2][k] = 0.5f * (u[1][k] + u[2][k]) + u[3][k];
      }
      float* d = gw + (o * cin + c) * 9;
      for (int i = 0; i < 3; i++) {
        d[i * 3 + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
        d[i * 3 + 1] += 0.5f * (t[i][1] - t[i][2]);
        d[i * 3 + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
      }
    }
  }
}

// Gᵀ·u for a 6-vector u and F(4x4, 3x3)'s G (see g_times; divisions for the same reason).
void gt_times4(const float* u, int stride, float* r, int rstride) {
  const float s12 = u[stride] + u[2 * stride], d12 = u[stride] - u[2 * stride];
  const float s34 = u[3 * stride] + u[4 * stride], d34 = u[3 * stride] - u[4 * stride];
  r[0] = 0.25f * u[0] + (s34 - 4.0f * s12) / 24.0f;
  r[rstride] = (d34 - 2.0f * d12) / 12.0f;
  r[2 * rstride] = (s34 - s12) / 6.0f + u[5 * stride];
}

// gW[o][c] += Gᵀ·gU·G for F(4x4, 3x3).
void add_filter_grads4(const float* gu, int64_t oc, float* gw, int64_t cin, int64_t cout) {
  for (int64_t o = 0; o < cout; o++) {
    for (int64_t c = 0; c < cin; c++) {
      float u[36], t[3][6], r[3];
      for (int e = 0; e < 36; e++) u[e] = gu[e * oc + o * cin + c];
      for (int k = 0; k < 6; k++) gt_times4(u + k, 6, &t[0][k], 6);  // t = Gᵀ·gU (3x6)
      float* d = gw + (o * cin + c) * 9;
      for (int i = 0; i < 3; i++) {
        gt_times4(t[i], 1, r, 1);  // (Gᵀ·gU·G) row i
        for (int jj = 0; jj < 3; jj++) d[i * 3 + jj] += r[jj];
      }
    }
  }
}

// conv3x3ThroughConv2d(gradOut, weight, x, reluMask, gradWeight, gradBias, n, outChannels, channels, height, width, pad,
//                      tile, inChannels, inHeight, inWidth, kh, kw, strideH, strideW, padH, padW)
constexpr ArgSpec kConv3x3ThroughArgs[] = {
    arg::f32("gradOut"),      arg::f32("weight"),         arg::f32("x"),          arg::u8_or_null("reluMask"),
    arg::f32_or_null("gradWeight"), arg::f32_or_null("gradBias"), arg::dim("n"), arg::dim("outChannels"),
    arg::dim("channels"),     arg::dim("height"),         arg::dim("width"),      arg::dim("pad"),
    arg::dim("tile"),         arg::dim("inChannels"),     arg::dim("inHeight"),   arg::dim("inWidth"),
    arg::dim("kh", 1),        arg::dim("kw", 1),          arg::dim("strideH", 1), arg::dim("strideW", 1),
    arg::dim("padH"),         arg::dim("padW")};

napi_value Conv3x3ThroughConv2d(napi_env env, napi_callback_info info) {
  lth::Args<22> a(env, info, "conv3x3ThroughConv2d", kConv3x3ThroughArgs);
  if (!a.ok()) return nullptr;
  const float *gy = a[0].f32(), *wt = a[1].f32(), *x = a[2].f32();
  uint8_t* mask = a[3].present ? a[3].u8() : nullptr;
  float* gw = a[4].present ? a[4].f32() : nullptr;
  float* gb = a[5].present ? a[5].f32() : nullptr;
  const int64_t n = a[6].dim(), cout = a[7].dim(), ch = a[8].dim(), h = a[9].dim(), w = a[10].dim(), pad = a[11].dim();
  const int64_t tile = a[12].dim();
  if (pad > 2) {
    a.fail(true, "pad must be 0, 1 or 2, got %lld", (long long)pad);
    return nullptr;
  }
  const int64_t oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
  if (oh < 1 || ow < 1) {
    a.fail(true, "a 3x3 kernel with padding %lld does not fit a %lldx%lld image", (long long)pad, (long long)h,
           (long long)w);
    return nullptr;
  }
  if (!geometry_fits(a, tile, oh, ow, 2 - pad)) return nullptr;
  lth::ConvJob c{};
  if (!lth::conv_geometry(a, a[13].dim(), a[14].dim(), a[15].dim(), a[16].dim(), a[17].dim(), a[18].dim(),
                          a[19].dim(), a[20].dim(), a[21].dim(), &c.g))
    return nullptr;
  if (c.g.oh != h || c.g.ow != w) {
    a.fail(true, "the first convolution's output is %lldx%lld, the 3x3 convolution's input %lldx%lld", (long long)c.g.oh,
           (long long)c.g.ow, (long long)h, (long long)w);
    return nullptr;
  }
  c.n = n;
  c.cout = ch;
  c.x = x;
  c.reluMask = mask;
  const u128 inTotal = (u128)n * c.in_size(), wTotal = (u128)ch * c.ckk();
  const size_t maskBytes = mask ? (size_t)(n * c.mask_bytes()) : 0;
  a.need("gradOut", a[0].len, (u128)n * cout * oh * ow, "n*outChannels*outH*outW");
  a.need("weight", a[1].len, (u128)cout * ch * 9, "outChannels*channels*9");
  a.need("x", a[2].len, inTotal, "n*inChannels*inHeight*inWidth");
  if (mask) a.need("reluMask", a[3].len, (u128)maskBytes, "n*ceil(channels*height*width/8)");
  if (gw) a.need("gradWeight", a[4].len, wTotal, "channels*inChannels*kh*kw");
  if (gb) a.need("gradBias", a[5].len, (u128)ch, "channels");
  if (!a.ok()) return nullptr;
  const size_t wBytes = (size_t)wTotal * sizeof(float);
  if (lth::overlaps(gw, wBytes, gy, (size_t)(n * cout * oh * ow) * 4) || lth::overlaps(gw, wBytes, wt, (size_t)(cout * ch * 9) * 4) ||
      lth::overlaps(gw, wBytes, x, (size_t)inTotal * 4) || lth::overlaps(gw, wBytes, mask, maskBytes) ||
      lth::overlaps(gw, wBytes, gb, (size_t)ch * 4)) {
    a.fail(true, "gradWeight must not share memory with gradOut, weight, x, reluMask or gradBias");
    return nullptr;
  }
  if (lth::overlaps(gb, (size_t)ch * 4, gy, (size_t)(n * cout * oh * ow) * 4) ||
      lth::overlaps(gb, (size_t)ch * 4, wt, (size_t)(cout * ch * 9) * 4) || lth::overlaps(gb, (size_t)ch * 4, mask, maskBytes)) {
    a.fail(true, "gradBias must not share memory with gradOut, weight or reluMask");
    return nullptr;
  }
  // With no output channels y's gradient is 0, and so are the gradients it would add.
  if (n == 0 || ch == 0 || cout == 0 || (!gw && !gb)) return lth::undefined_value(env);
  lth::FtzScope ftz;
  Job j = make_job(gy, nullptr, nullptr, n, cout, ch, oh, ow, 2 - pad, false, (int)tile, false);
  j.rowsPerBlock = (j.rowsPerBlock >= j.th ? j.rowsPerBlock / j.th : 1) * j.th;
  const int64_t blocks = (j.tileRows + j.rowsPerBlock - 1) / j.rowsPerBlock, wsize = ch * c.ckk();
  thread_local std::vector<float> pbuf;  // the caller's: the pool's threads write through c.partials
  thread_local std::vector<double> sbuf;
  if (gw) c.partials = grow(pbuf, (size_t)(blocks * wsize));
  if (gb) {
    if (sbuf.size() < (size_t)(n * ch)) sbuf.resize((size_t)(n * ch));
    c.biasSums = sbuf.data();
  }
  const Through through{&c, wsize};
  j.through = &through;
  run_conv(j, wt, true);
  lth::conv2d_add_grads(c, blocks, gw, gb);
  return lth::undefined_value(env);
}

// conv3x3WeightGrad(x, gradOut, gradWeight, n, inChannels, outChannels, height, width, pad, tile)
constexpr ArgSpec kConv3x3WeightGradArgs[] = {arg::f32("x"),      arg::f32("gradOut"),     arg::f32("gradWeight"),
                                              arg::dim("n"),      arg::dim("inChannels"),  arg::dim("outChannels"),
                                              arg::dim("height"), arg::dim("width"),       arg::dim("pad"),
                                              arg::dim("tile")};

napi_value Conv3x3WeightGrad(napi_env env, napi_callback_info info) {
  lth::Args<10> a(env, info, "conv3x3WeightGrad", kConv3x3WeightGradArgs);
  if (!a.ok()) return nullptr;
  const float *x = a[0].f32(), *gy = a[1].f32();
  float* gw = a[2].f32();
  const int64_t n = a[3].dim(), cin = a[4].dim(), cout = a[5].dim(), h = a[6].dim(), w = a[7].dim(), pad = a[8].dim();
  const int64_t tile = a[9].dim();
  if (!geometry_fits(a, tile, h, w, pad)) return nullptr;
  const int64_t oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
  a.need("x", a[0].len, (u128)n * cin * h * w, "n*inChannels*height*width");
  a.need("gradOut", a[1].len, (u128)n * cout * oh * ow, "n*outChannels*outH*outW");
  a.need("gradWeight", a[2].len, (u128)cin * cout * 9, "inChannels*outChannels*9");
  if (!a.ok()) return nullptr;
  if (n == 0 || cout == 0 || cin == 0) return lth::undefined_value(env);
  lth::FtzScope ftz;
  GradJob gj{make_job(x, nullptr, nullptr, n, cin, cout, h, w, pad, false, (int)tile, true), gy, nullptr, 0, 0};
  // Where there are more blocks than kGroups, as many blocks of fewer rows as the next
  // multiple of kGroups, so that the groups hold (nearly) the same tiles and 2, 4 or 8
  // threads share them evenly (35 blocks of 14 tile rows, 4 or 5 to a group, left one of 2
  // threads a sixth more work than the other).
  constexpr int64_t kGroups = 8;
  gj.blocks = (gj.j.tileRows + gj.j.rowsPerBlock - 1) / gj.j.rowsPerBlock;
  if (gj.blocks > kGroups) {
    const int64_t even = (gj.blocks + kGroups - 1) / kGroups * kGroups;
    gj.j.rowsPerBlock = (gj.j.tileRows + even - 1) / even;
    gj.blocks = (gj.j.tileRows + gj.j.rowsPerBlock - 1) / gj.j.rowsPerBlock;
  }
  // Up to kGroups groups (enough for the pool to share), fewer when the partials would pass 16M floats.
  const int64_t size = gj.j.entries() * entry_stride(cout, cin);
  int64_t groups = gj.blocks < kGroups ? gj.blocks : kGroups;
  while (groups > 1 && groups * size > ((int64_t)1 << 24)) groups--;
  gj.groups = (int)groups;
  thread_local std::vector<float> pbuf;
  gj.partials = grow(pbuf, (size_t)(groups * size));
  float* scratch = lth::caller_scratch();
  const int threads = lth::thread_count();
  if (!(threads > 1 && groups > 1 && lth::run_parts_scratch(threads, gj.groups, grad_group, &gj, scratch)))
    for (int g = 0; g < gj.groups; g++) grad_group(&gj, g, scratch);
  // On the pool: the partials summed in group order into the first (by runs of 4096
  // floats), then each output channel's filter gradients.
  float* gu = gj.partials;
  constexpr int64_t kRun = 4096;
  lth::parallel_units((size + kRun - 1) / kRun, groups * size, [&](int64_t r0, int64_t r1) {
    const int64_t i1 = r1 * kRun < size ? r1 * kRun : size;
    for (int64_t g = 1; g < groups; g++)
      for (int64_t i = r0 * kRun; i < i1; i++) gu[i] += gj.partials[g * size + i];
  });
  const int64_t es = entry_stride(cout, cin);
  lth::parallel_units(cout, size, [&](int64_t o0, int64_t o1) {
    if (tile == 4)
      add_filter_grads4(gu + o0 * cin, es, gw + o0 * cin * 9, cin, o1 - o0);
    else
      add_filter_grads2(gu + o0 * cin, es, gw + o0 * cin * 9, cin, o1 - o0);
  });
  return lth::undefined_value(env);
}

}  // namespace

bool lth::register_winograd(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"conv3x3", Conv3x3}, {"conv3x3Pool", Conv3x3Pool}, {"conv3x3WeightGrad", Conv3x3WeightGrad},
                                         {"conv3x3ThroughConv2d", Conv3x3ThroughConv2d}};
  return define_exports(env, exports, kExports);
}
