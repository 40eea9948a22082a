// Sparse convolution kernel bodies, included by native/sparse_conv.cc once per ISA inside
// its own namespace with LTH_SC_TARGET set to that ISA's target attribute and LTH_SC_VMAX
// to the most 16-float vectors a tile keeps in registers (8 on AVX-512: 8 of its 32 zmm;
// 4 elsewhere, 8 of AVX2's 16 ymm). No standard headers here (see native/README.md).
//
// The "shift" form of a stride-1 convolution: with the input zero-padded into planes of
// width Wp, output (y, x) of a plane laid out on the same width is at q = y·Wp + x, and the
// input under kernel tap (c, i, j) is at c·plane + i·Wp + j + q. So every nonzero of the
// weight is one fixed offset, and a run of outputs is a vector FMA over a contiguous run
// of the padded input: no im2col. Columns x ≥ outW of that grid are junk, computed and
// dropped (2 of 34 at 32×32, 2 of 10 at 8×8).

typedef float vf __attribute__((vector_size(64), aligned(4), may_alias));

LTH_SC_TARGET static inline vf ld16(const float* p) { return *reinterpret_cast<const vf*>(p); }
LTH_SC_TARGET static inline void st16(float* p, vf v) { *reinterpret_cast<vf*>(p) = v; }

// tile[16v + l] = Σ_{j0 ≤ j < j1} w[j]·src[off[j] + q0 + 16v + l] for v < V: each term in
// order j0, j1 - 1, one FMA chain per output.
template <int V>
LTH_SC_TARGET static inline void shift_tile(const float* src, const int32_t* off, const float* w, int64_t j0, int64_t j1,
                                            int64_t q0, float* tile) {
  vf a[V];
  for (int v = 0; v < V; v++) a[v] = vf{};
  const float* s = src + q0;
  for (int64_t j = j0; j < j1; j++) {
    const float* p = s + off[j];
    const float wj = w[j];
    for (int v = 0; v < V; v++) a[v] += wj * ld16(p + 16 * v);
  }
  for (int v = 0; v < V; v++) st16(tile + 16 * v, a[v]);
}

// The output rows [r0, r1) of a shift-form convolution of one image: row r is
// Σ_{ptr[r] ≤ j < ptr[r+1]} w[j]·src[off[j] + q] over the grid q < rows·width; the valid
// columns (x < outW) go to out[r·outH·outW + y·outW + x], as bias[r] + the sum (ReLU'd when
// relu) or added to what is there (accumulate; bias then null). src must be readable up
// to the largest offset + q rounded up to 16 (the caller pads it).
LTH_SC_TARGET static void shift_conv(const float* src, const int32_t* ptr, const int32_t* off, const float* w,
                                     int64_t r0, int64_t r1, int64_t outH, int64_t outW, int64_t width, float* out,
                                     const float* bias, bool relu, bool accumulate) {
  constexpr int64_t T = 16 * LTH_SC_VMAX;
  const int64_t q1 = outH * width, plane = outH * outW;
  float tile[T] __attribute__((aligned(64)));
  for (int64_t q0 = 0; q0 < q1; q0 += T) {
    const int64_t qe = q0 + T < q1 ? q0 + T : q1;
    const int vecs = (int)((qe - q0 + 15) / 16);
    for (int64_t r = r0; r < r1; r++) {
      switch (vecs) {
#if LTH_SC_VMAX > 4
        case 8: shift_tile<8>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
        case 7: shift_tile<7>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
        case 6: shift_tile<6>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
        case 5: shift_tile<5>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
#endif
        case 4: shift_tile<4>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
        case 3: shift_tile<3>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
        case 2: shift_tile<2>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
        default: shift_tile<1>(src, off, w, ptr[r], ptr[r + 1], q0, tile); break;
      }
      // Scatter the tile's valid columns, one grid row segment at a time.
      float* o = out + r * plane;
      const float b = bias ? bias[r] : 0.0f;
      int64_t y = q0 / width, x = q0 - y * width;
      for (int64_t q = q0; q < qe;) {
        const int64_t seg = (width - x) < (qe - q) ? (width - x) : (qe - q);
        const int64_t valid = x < outW ? ((outW - x) < seg ? (outW - x) : seg) : 0;
        const float* t = tile + (q - q0);
        float* d = o + y * outW + x;
        if (accumulate) {
          for (int64_t i = 0; i < valid; i++) d[i] += t[i];
        } else {
          for (int64_t i = 0; i < valid; i++) {
            const float v = t[i] + b;
            d[i] = relu && v < 0.0f ? 0.0f : v;  // NaN stays NaN
          }
        }
        q += seg;
        x += seg;
        if (x == width) {
          x = 0;
          y++;
        }
      }
    }
  }
}

// Weight gradient of one image's rows [r0, r1): acc[j] += Σ_{q < qn} gy[r·qn + q]·src[off[j] + q]
// for the nonzeros j of each row, gy on the padded grid (its junk columns zero) and qn a
// multiple of 16. Four nonzeros at a time share the loads of gy.
LTH_SC_TARGET static inline float hsum(vf a) {
  float s[16] __attribute__((aligned(64)));
  // Pairwise halves: fixed order, the same on every path.
  for (int l = 0; l < 8; l++) s[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; l++) s[l] += s[l + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

LTH_SC_TARGET static void shift_weight_grad(const float* src, const float* gy, const int32_t* ptr, const int32_t* off,
                                            int64_t r0, int64_t r1, int64_t qn, float* acc) {
  for (int64_t r = r0; r < r1; r++) {
    const float* g = gy + r * qn;
    int64_t j = ptr[r];
    const int64_t je = ptr[r + 1];
    for (; j + 4 <= je; j += 4) {
      const float *p0 = src + off[j], *p1 = src + off[j + 1], *p2 = src + off[j + 2], *p3 = src + off[j + 3];
      vf a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (int64_t q = 0; q < qn; q += 16) {
        const vf gv = ld16(g + q);
        a0 += gv * ld16(p0 + q);
        a1 += gv * ld16(p1 + q);
        a2 += gv * ld16(p2 + q);
        a3 += gv * ld16(p3 + q);
      }
      acc[j] += hsum(a0);
      acc[j + 1] += hsum(a1);
      acc[j + 2] += hsum(a2);
      acc[j + 3] += hsum(a3);
    }
    for (; j < je; j++) {
      const float* p = src + off[j];
      vf a = {};
      for (int64_t q = 0; q < qn; q += 16) a += ld16(g + q) * ld16(p + q);
      acc[j] += hsum(a);
    }
  }
}

static const ConvKernels kTable = {shift_conv, shift_weight_grad};
