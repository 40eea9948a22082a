// AVX transpose-pack shared by the AVX2 and AVX-512 units (included inside their
// anonymous namespace; needs <immintrin.h> and kernels_impl.h's scalar helpers).

// d[i*ds + r] = s[r*ls + i] for an 8x8 block. Rows r and r+4 are loaded into the
// two halves of one register (the inserts run on the load ports), which leaves 16
// shuffles instead of the usual 24.
inline void tr8x8(const float* s, int64_t ls, float* d, int64_t ds) {
#define LTH_LD2(r, c) _mm256_insertf128_ps(_mm256_broadcast_ps(reinterpret_cast<const __m128*>(s + (r) * ls + (c))), \
                                           _mm_loadu_ps(s + ((r) + 4) * ls + (c)), 1)
  for (int h = 0; h < 2; h++) {  // columns 4h .. 4h+3
    const __m256 r0 = LTH_LD2(0, 4 * h), r1 = LTH_LD2(1, 4 * h), r2 = LTH_LD2(2, 4 * h), r3 = LTH_LD2(3, 4 * h);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    float* dd = d + 4 * h * ds;
    _mm256_storeu_ps(dd + 0 * ds, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(dd + 1 * ds, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm256_storeu_ps(dd + 2 * ds, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(dd + 3 * ds, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)));
  }
#undef LTH_LD2
}

// d[i*ds + r] = s[r*ls + i] for a 4-row x 8-column block.
inline void tr4x8(const float* s, int64_t ls, float* d, int64_t ds) {
  for (int h = 0; h < 2; h++) {
    __m128 r0 = _mm_loadu_ps(s + 0 * ls + 4 * h), r1 = _mm_loadu_ps(s + 1 * ls + 4 * h);
    __m128 r2 = _mm_loadu_ps(s + 2 * ls + 4 * h), r3 = _mm_loadu_ps(s + 3 * ls + 4 * h);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    float* dd = d + 4 * h * ds;
    _mm_storeu_ps(dd + 0 * ds, r0);
    _mm_storeu_ps(dd + 1 * ds, r1);
    _mm_storeu_ps(dd + 2 * ds, r2);
    _mm_storeu_ps(dd + 3 * ds, r3);
  }
}

// d[i*ds + r] = s[r*ls + i] for a 2-row x 8-column block: the last two rows of AVX2's
// 6-row panels, which would otherwise be a third of every panel's packing, one float at
// a time.
inline void tr2x8(const float* s, int64_t ls, float* d, int64_t ds) {
  const __m256 a = _mm256_loadu_ps(s), b = _mm256_loadu_ps(s + ls);
  const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);  // a0 b0 a1 b1 | a4 b4 a5 b5, and 2 3 | 6 7
  const __m128 l0 = _mm256_castps256_ps128(lo), l1 = _mm256_extractf128_ps(lo, 1);
  const __m128 h0 = _mm256_castps256_ps128(hi), h1 = _mm256_extractf128_ps(hi, 1);
  _mm_storel_pi(reinterpret_cast<__m64*>(d + 0 * ds), l0);
  _mm_storeh_pi(reinterpret_cast<__m64*>(d + 1 * ds), l0);
  _mm_storel_pi(reinterpret_cast<__m64*>(d + 2 * ds), h0);
  _mm_storeh_pi(reinterpret_cast<__m64*>(d + 3 * ds), h0);
  _mm_storel_pi(reinterpret_cast<__m64*>(d + 4 * ds), l1);
  _mm_storeh_pi(reinterpret_cast<__m64*>(d + 5 * ds), l1);
  _mm_storel_pi(reinterpret_cast<__m64*>(d + 6 * ds), h1);
  _mm_storeh_pi(reinterpret_cast<__m64*>(d + 7 * ds), h1);
}

// dst[c*stride + r] = src[r*ld + c] for r0 <= r < rows (no padding). A group of 8 rows
// at a time across all the columns: rows a multiple of 4 KiB apart (a fully connected
// layer's weight rows) share an L1 set, and 16 rows walked together, column by column,
// evicted each other's lines before their second half was read.
inline void pack_transpose_rows_avx(const float* __restrict src, int64_t ld, int r0, int rows, int64_t cols,
                                    float* __restrict dst, int stride) {
  const int64_t c8 = cols & ~(int64_t)7;
  int r = r0;
  for (; r + 8 <= rows; r += 8)
    for (int64_t c = 0; c < c8; c += 8) tr8x8(src + r * ld + c, ld, dst + c * stride + r, stride);
  for (; r + 4 <= rows; r += 4)
    for (int64_t c = 0; c < c8; c += 8) tr4x8(src + r * ld + c, ld, dst + c * stride + r, stride);
  for (; r + 2 <= rows; r += 2)
    for (int64_t c = 0; c < c8; c += 8) tr2x8(src + r * ld + c, ld, dst + c * stride + r, stride);
  if (r < rows) pack_transpose_scalar(src, ld, r, rows, 0, c8, dst, stride);
  if (c8 < cols) pack_transpose_scalar(src, ld, r0, rows, c8, cols, dst, stride);
}
