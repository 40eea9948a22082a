// Packing helpers shared by all ISA units (included inside their anonymous
// namespace, before they define pack_transpose and micro_kernel).

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// A product over k = 0 terms: rows [r0, r1) x columns [c0, c1) of C become zero, or stay as
// they are when accumulating.
inline void empty_product(const lth::GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  if (!g.accumulate)
    for (int64_t i = r0; i < r1; i++)
      for (int64_t j = c0; j < c1; j++) g.c[i * g.n + j] = 0.0f;
}

// dst[c*stride + r] = src[c*ld + r] for r < rows, 0 for rows <= r < STRIDE.
template <int STRIDE>
inline void pack_copy(const float* __restrict src, int64_t ld, int rows, int64_t cols, float* __restrict dst) {
  if (rows == STRIDE) {
    for (int64_t c = 0; c < cols; c++) {
      const float* s = src + c * ld;
      float* d = dst + c * STRIDE;
      for (int r = 0; r < STRIDE; r++) d[r] = s[r];
    }
  } else {
    for (int64_t c = 0; c < cols; c++) {
      const float* s = src + c * ld;
      float* d = dst + c * STRIDE;
      int r = 0;
      for (; r < rows; r++) d[r] = s[r];
      for (; r < STRIDE; r++) d[r] = 0.0f;
    }
  }
}

// Scalar transpose-pack for the edges the vector version leaves.
inline void pack_transpose_scalar(const float* __restrict src, int64_t ld, int r0, int rows, int64_t c0,
                                  int64_t cols, float* __restrict dst, int stride) {
  for (int64_t c = c0; c < cols; c++)
    for (int r = r0; r < rows; r++) dst[c * stride + r] = src[r * ld + c];
}

// The ReLU mask's bits (Kernels::rowBiasAct) and Kernels::maskByBits from value k0 on (k0
// a multiple of 8): the whole of the scalar path's, the tails of the vector paths'.
inline void relu_bits_from(const float* __restrict y, uint8_t* __restrict bits, int64_t k0, int64_t n) {
  for (int64_t k = k0; k < n; k += 8) {
    unsigned byte = 0;
    for (int64_t i = 0; i < 8 && k + i < n; i++) byte |= (y[k + i] > 0.0f ? 1u : 0u) << i;
    bits[k >> 3] = (uint8_t)byte;
  }
}

inline void mask_by_bits_from(const float* g, const uint8_t* __restrict bits, float* out, int64_t k0, int64_t n) {
  for (int64_t k = k0; k < n; k++) {
    const float v = g[k];
    out[k] = (bits[k >> 3] >> (k & 7)) & 1 ? v : 0.0f;
  }
}

inline void pack_zero_pad(int rows, int64_t cols, float* __restrict dst, int stride) {
  if (rows >= stride) return;
  for (int64_t c = 0; c < cols; c++)
    for (int r = rows; r < stride; r++) dst[c * stride + r] = 0.0f;
}


// Packs rows [0, rows) x columns [0, cols) of a row-major matrix (leading dimension
// ld) into panels of STRIDE columns: panel q holds dst[q*rows*STRIDE + r*STRIDE + j]
// = src[r*ld + q*STRIDE + j], zero past `cols`. Eight source rows at a time, so that each
// visit to a panel writes eight of its rows in a run: a row at a time stored one
// cache line into every panel in turn, a page apart or more (a fully connected layer's
// 256 x 16384 weight as the input gradient's op(B): 32 panels of a block 16 KB apart);
// eight at a time that product took 0.85-0.90 of its former time.
template <int STRIDE>
inline void pack_rows_into_panels_t(const float* __restrict src, int64_t ld, int64_t cols, int64_t rows,
                                    float* __restrict dst) {
  const int64_t full = cols / STRIDE, rest = cols - full * STRIDE;
  for (int64_t r0 = 0; r0 < rows; r0 += 8) {
    const int g = rows - r0 < 8 ? (int)(rows - r0) : 8;
    const float* s = src + r0 * ld;
    float* d = dst + r0 * STRIDE;
    for (int64_t q = 0; q < full; q++) {
      for (int i = 0; i < g; i++)
        for (int j = 0; j < STRIDE; j++) d[i * STRIDE + j] = s[i * ld + j];
      s += STRIDE;
      d += rows * STRIDE;
    }
    if (rest)
      for (int i = 0; i < g; i++) {
        int j = 0;
        for (; j < rest; j++) d[i * STRIDE + j] = s[i * ld + j];
        for (; j < STRIDE; j++) d[i * STRIDE + j] = 0.0f;
      }
  }
}
