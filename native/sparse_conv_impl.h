// Sparse convolution kernel bodies, included by native/sparse_conv.cc once per ISA inside
// its own namespace with LTH_SC_TARGET set to that ISA's target attribute, LTH_SC_WIDTH
// to its vector width in floats (16 on AVX-512, 8 on AVX2, 4 on the baseline: a generic
// vector wider than the ISA's registers would live on the stack) and LTH_SC_VMAX to the
// most vectors a tile keeps in registers (12 on AVX-512: 12 of its 32 zmm, fewer vectors
// a tile meaning more overhead per nonzero; 8 elsewhere, half of AVX2's 16 ymm). No
// standard headers here (see native/README.md).
//
// The "shift" form of a stride-1 convolution: with the input zero-padded into planes of
// width Wp, output (y, x) of a plane laid out on the same width is at q = y·Wp + x, and the
// input under kernel tap (c, i, j) is at c·plane + i·Wp + j + q. So every nonzero of the
// weight is one fixed offset, and a run of outputs is a vector FMA over a contiguous run
// of the padded input: no im2col. Columns x ≥ outW of that grid are junk, computed and
// dropped (the rows share their padding, sparse_conv.cc's Geometry: 1 of 33 at 32×32,
// 1 of 17 at 16×16).

#include "vec_lanes.h"

constexpr int kW = LTH_SC_WIDTH;
typedef float vf __attribute__((vector_size(4 * LTH_SC_WIDTH), aligned(4), may_alias));

LTH_SC_TARGET static inline vf ldv(const float* p) { return *reinterpret_cast<const vf*>(p); }
LTH_SC_TARGET static inline void stv(float* p, vf v) { *reinterpret_cast<vf*>(p) = v; }

// tile[kW·v + l] (+)= Σ_{j0 ≤ j < j1} w[j]·src[off[j] + q0 + kW·v + l] for v < V (adding to
// the tile when Load): each term in order j0, j1 - 1, one FMA chain per output.
template <int V, bool Load>
LTH_SC_TARGET static inline void shift_tile(const float* src, const int32_t* off, const float* w, int64_t j0, int64_t j1,
                                            int64_t q0, float* tile) {
  vf a[V];
  for (int v = 0; v < V; v++) a[v] = Load ? ldv(tile + kW * v) : vf{};
  const float* s = src + q0;
  for (int64_t j = j0; j < j1; j++) {
    const float* p = s + off[j];
    const float wj = w[j];
    for (int v = 0; v < V; v++) a[v] += wj * ldv(p + kW * v);
  }
  for (int v = 0; v < V; v++) stv(tile + kW * v, a[v]);
}

template <bool Load>
LTH_SC_TARGET static inline void shift_tiles(int vecs, const float* src, const int32_t* off, const float* w, int64_t j0,
                                             int64_t j1, int64_t q0, float* tile) {
  switch (vecs) {
#if LTH_SC_VMAX > 8
    case 12: shift_tile<12, Load>(src, off, w, j0, j1, q0, tile); break;
    case 11: shift_tile<11, Load>(src, off, w, j0, j1, q0, tile); break;
    case 10: shift_tile<10, Load>(src, off, w, j0, j1, q0, tile); break;
    case 9: shift_tile<9, Load>(src, off, w, j0, j1, q0, tile); break;
#endif
#if LTH_SC_VMAX > 4
    case 8: shift_tile<8, Load>(src, off, w, j0, j1, q0, tile); break;
    case 7: shift_tile<7, Load>(src, off, w, j0, j1, q0, tile); break;
    case 6: shift_tile<6, Load>(src, off, w, j0, j1, q0, tile); break;
    case 5: shift_tile<5, Load>(src, off, w, j0, j1, q0, tile); break;
#endif
    case 4: shift_tile<4, Load>(src, off, w, j0, j1, q0, tile); break;
    case 3: shift_tile<3, Load>(src, off, w, j0, j1, q0, tile); break;
    case 2: shift_tile<2, Load>(src, off, w, j0, j1, q0, tile); break;
    default: shift_tile<1, Load>(src, off, w, j0, j1, q0, tile); break;
  }
}

// The output rows [r0, r1) of a shift-form convolution of one image: row r is
// Σ_{ptr[r] ≤ j < ptr[r+1]} w[j]·src[off[j] + q] over the grid q < outH·width, computed
// into ext [rows][qn] (qn: the grid rounded up to 16), then its valid columns (x < outW)
// written to out[r·outH·outW + y·outW + x] as bias[r] + the sum (ReLU'd when relu), or
// added to what is there (accumulate; bias then null). src must be readable up to the
// largest offset + qn (the caller pads it).
//
// A row's nonzeros are in source channel order, split into nb blocks of channels
// (seg [rows][nb + 1]: row r's nonzeros of block b are [seg[r][b], seg[r][b+1])). A tile of
// outputs is computed block by block, every row's segment of a block before the next
// block, so the source rows a block reads stay in L1; the tile goes through memory between
// segments, which changes no rounding (the FMA chain is the same).
LTH_SC_TARGET static void shift_conv(const float* src, const int32_t* seg, int64_t nb, const int32_t* off, const float* w,
                                     int64_t r0, int64_t r1, int64_t outH, int64_t outW, int64_t width, float* ext,
                                     float* out, const float* bias, bool relu, bool accumulate) {
  const int64_t q1 = outH * width, qn = (q1 + 15) / 16 * 16, plane = outH * outW;
  // The grid's vectors in as few tiles as LTH_SC_VMAX allows, of sizes differing by at
  // most one (17 vectors at 16×16 on AVX-512: 9 and 8, not 12 and 5).
  const int64_t nv = qn / kW, nt = (nv + LTH_SC_VMAX - 1) / LTH_SC_VMAX;
  for (int64_t t = 0, v0 = 0; t < nt; t++) {
    const int vecs = (int)(nv * (t + 1) / nt - v0);
    const int64_t q0 = kW * v0;
    v0 += vecs;
    for (int64_t b = 0; b < nb; b++) {
      for (int64_t r = r0; r < r1; r++) {
        const int32_t* s = seg + r * (nb + 1);
        float* tile = ext + (r - r0) * qn + q0;
        if (b == 0) shift_tiles<false>(vecs, src, off, w, s[0], s[1], q0, tile);
        else if (s[b] < s[b + 1]) shift_tiles<true>(vecs, src, off, w, s[b], s[b + 1], q0, tile);
      }
    }
  }
  for (int64_t r = r0; r < r1; r++) {
    const float b = bias ? bias[r] : 0.0f;
    for (int64_t y = 0; y < outH; y++) {
      const float* t = ext + (r - r0) * qn + y * width;
      float* d = out + r * plane + y * outW;
      if (accumulate) {
        for (int64_t x = 0; x < outW; x++) d[x] += t[x];
      } else if (relu) {
        for (int64_t x = 0; x < outW; x++) {
          const float v = t[x] + b;
          d[x] = v < 0.0f ? 0.0f : v;  // NaN stays NaN
        }
      } else {
        for (int64_t x = 0; x < outW; x++) d[x] = t[x] + b;
      }
    }
  }
}

// One step of reducing kW accumulators to one vector: within each block of 2h lanes, the
// first h lanes become a's two halves added, the next h lanes b's.
template <int H>
LTH_SC_TARGET static inline vf fold(vf a, vf b) {
#define LTH_SC_LO(l) ((l) % (2 * H) < H ? (l) : kW + (l) - H)
#define LTH_SC_HI(l) ((l) % (2 * H) < H ? (l) + H : kW + (l))
  const vf lo = __builtin_shufflevector(a, b, LTH_LANES(LTH_SC_WIDTH, LTH_SC_LO));
  const vf hi = __builtin_shufflevector(a, b, LTH_LANES(LTH_SC_WIDTH, LTH_SC_HI));
#undef LTH_SC_LO
#undef LTH_SC_HI
  return lo + hi;
}

// The fold of N accumulators: pairs folded into N/2 vectors, and so on down to one.
template <int N>
LTH_SC_TARGET static inline vf fold_all(const vf* a) {
  if constexpr (N == 1) {
    return a[0];
  } else {
    vf h[N / 2];
    for (int i = 0; i < N / 2; i++) h[i] = fold<N / 2>(a[2 * i], a[2 * i + 1]);
    return fold_all<N / 2>(h);
  }
}

// l with its log2(kW) bits reversed.
constexpr int rev_lane(int l) {
  int r = 0;
  for (int b = 1; b < kW; b <<= 1, l >>= 1) r = (r << 1) | (l & 1);
  return r;
}

// The sums of kW accumulators: lane l of the result is the sum of a[rev_lane(l)] (what the
// folds of pairs give).
LTH_SC_TARGET static inline vf sum_w(const vf* a) { return fold_all<kW>(a); }

LTH_SC_TARGET static inline float hsum(vf a) {
  float s[kW] __attribute__((aligned(64)));
  // Pairwise halves: fixed order.
  for (int l = 0; l < kW / 2; l++) s[l] = a[l] + a[l + kW / 2];
  if constexpr (kW == 16)
    for (int l = 0; l < 4; l++) s[l] += s[l + 4];
  return kW == 4 ? s[0] + s[1] : (s[0] + s[2]) + (s[1] + s[3]);
}

// Weight gradient of one image's rows [r0, r1): acc[j] += Σ_{q < qn} gy[r·qn + q]·src[off[j] + q]
// for the nonzeros j of each row, gy on the padded grid (its junk columns zero) and qn a
// multiple of 16. kW nonzeros at a time share the loads of gy and one reduction (sum_w);
// then four at a time, then one.
LTH_SC_TARGET static void shift_weight_grad(const float* src, const float* gy, const int32_t* ptr, const int32_t* off,
                                            int64_t r0, int64_t r1, int64_t qn, float* acc) {
  for (int64_t r = r0; r < r1; r++) {
    const float* g = gy + r * qn;
    int64_t j = ptr[r];
    const int64_t je = ptr[r + 1];
    constexpr int kRev[kW] = {LTH_LANES(LTH_SC_WIDTH, rev_lane)};
    for (; j + kW <= je; j += kW) {
      const float* p[kW];
      for (int i = 0; i < kW; i++) p[i] = src + off[j + kRev[i]];
      vf a[kW];
      for (int i = 0; i < kW; i++) a[i] = vf{};
      for (int64_t q = 0; q < qn; q += kW) {
        const vf gv = ldv(g + q);
        for (int i = 0; i < kW; i++) a[i] += gv * ldv(p[i] + q);
      }
      stv(acc + j, ldv(acc + j) + sum_w(a));
    }
    for (; j + 4 <= je; j += 4) {
      const float *p0 = src + off[j], *p1 = src + off[j + 1], *p2 = src + off[j + 2], *p3 = src + off[j + 3];
      vf a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (int64_t q = 0; q < qn; q += kW) {
        const vf gv = ldv(g + q);
        a0 += gv * ldv(p0 + q);
        a1 += gv * ldv(p1 + q);
        a2 += gv * ldv(p2 + q);
        a3 += gv * ldv(p3 + q);
      }
      acc[j] += hsum(a0);
      acc[j + 1] += hsum(a1);
      acc[j + 2] += hsum(a2);
      acc[j + 3] += hsum(a3);
    }
    for (; j < je; j++) {
      const float* p = src + off[j];
      vf a = {};
      for (int64_t q = 0; q < qn; q += kW) a += ldv(g + q) * ldv(p + q);
      acc[j] += hsum(a);
    }
  }
}

static const ConvKernels kTable = {shift_conv, shift_weight_grad};
