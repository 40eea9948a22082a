// Sparse kernel bodies, included by native/sparse.cc once per ISA inside its own
// namespace with LTH_SP_TARGET set to that ISA's target attribute. GCC generic vectors
// of 16 floats: one zmm on AVX-512, two ymm on AVX2, four xmm on the baseline.
// No standard headers here (see native/README.md).

typedef float vf __attribute__((vector_size(64), aligned(4), may_alias));

LTH_SP_TARGET static inline vf ld16(const float* p) { return *reinterpret_cast<const vf*>(p); }
LTH_SP_TARGET static inline void st16(float* p, vf v) { *reinterpret_cast<vf*>(p) = v; }
LTH_SP_TARGET static inline vf relu16(vf a) {
  const vf z = {};
  return a < z ? z : a;  // NaN stays NaN
}

// outT[r, c] = init + Σ_k w[r*rs + idx[k]*is] · inT[idx[k], c], c < n, row stride ld.
LTH_SP_TARGET static void spmm(const float* w, const int32_t* ptr, const int32_t* idx, int64_t rs, int64_t is,
                               const float* inT, float* outT, const float* bias, int64_t r0, int64_t r1, int64_t n,
                               int64_t ld, bool acc, bool relu) {
  for (int64_t r = r0; r < r1; r++) {
    const int32_t k0 = ptr[r], k1 = ptr[r + 1];
    const float* wr = w + r * rs;
    float* o = outT + r * ld;
    const float b0 = bias ? bias[r] : 0.0f;
    int64_t c = 0;
    for (; c + 64 <= n; c += 64) {
      vf a0, a1, a2, a3;
      if (acc) {
        a0 = ld16(o + c); a1 = ld16(o + c + 16); a2 = ld16(o + c + 32); a3 = ld16(o + c + 48);
      } else {
        a0 = vf{} + b0; a1 = a0; a2 = a0; a3 = a0;
      }
      for (int32_t k = k0; k < k1; k++) {
        const int64_t i = idx[k];
        const float wv = wr[i * is];
        const float* x = inT + i * ld + c;
        a0 += wv * ld16(x); a1 += wv * ld16(x + 16); a2 += wv * ld16(x + 32); a3 += wv * ld16(x + 48);
      }
      if (relu) { a0 = relu16(a0); a1 = relu16(a1); a2 = relu16(a2); a3 = relu16(a3); }
      st16(o + c, a0); st16(o + c + 16, a1); st16(o + c + 32, a2); st16(o + c + 48, a3);
    }
    for (; c + 16 <= n; c += 16) {
      vf a0 = acc ? ld16(o + c) : vf{} + b0;
      for (int32_t k = k0; k < k1; k++) {
        const int64_t i = idx[k];
        a0 += wr[i * is] * ld16(inT + i * ld + c);
      }
      if (relu) a0 = relu16(a0);
      st16(o + c, a0);
    }
    for (; c < n; c++) {
      float a = acc ? o[c] : b0;
      for (int32_t k = k0; k < k1; k++) {
        const int64_t i = idx[k];
        a += wr[i * is] * inT[i * ld + c];
      }
      o[c] = relu && a < 0.0f ? 0.0f : a;
    }
  }
}

// out[r*rs + idx[k]*is] += Σ_{c<n} aT[r, c] · bT[idx[k], c] for the nonzeros of rows [r0, r1).
LTH_SP_TARGET static void sddmm(const float* aT, const int32_t* ptr, const int32_t* idx, int64_t rs, int64_t is,
                                const float* bT, float* out, int64_t r0, int64_t r1, int64_t n, int64_t ld) {
  const int64_t n16 = n & ~(int64_t)15;
  for (int64_t r = r0; r < r1; r++) {
    const int32_t k0 = ptr[r], k1 = ptr[r + 1];
    const float* a = aT + r * ld;
    float* orow = out + r * rs;
    for (int32_t k = k0; k < k1; k++) {
      const int64_t i = idx[k];
      const float* b = bT + i * ld;
      vf s0 = {}, s1 = {};
      int64_t c = 0;
      for (; c + 32 <= n16; c += 32) {
        s0 += ld16(a + c) * ld16(b + c);
        s1 += ld16(a + c + 16) * ld16(b + c + 16);
      }
      if (c < n16) s0 += ld16(a + c) * ld16(b + c), c += 16;
      s0 += s1;
      float s = 0.0f;
      for (int l = 0; l < 16; l++) s += s0[l];
      for (; c < n; c++) s += a[c] * b[c];
      orow[i * is] += s;
    }
  }
}

// out[c*ldo + r] (+)= x[r*ldx + c] over rows [r0, r1) ... all of cols; zero padding rows..ldo when !acc.
LTH_SP_TARGET static void transpose(const float* x, float* out, int64_t rows, int64_t cols, int64_t ldx, int64_t ldo,
                                    bool acc, int64_t c0, int64_t c1) {
  constexpr int64_t B = 16;
  for (int64_t cb = c0; cb < c1; cb += B) {
    const int64_t ce = cb + B < c1 ? cb + B : c1;
    for (int64_t rb = 0; rb < rows; rb += B) {
      const int64_t re = rb + B < rows ? rb + B : rows;
      if (ce - cb == B && re - rb == B && !acc) {
        float t[B][B];
        for (int64_t r = 0; r < B; r++) {
          const float* xr = x + (rb + r) * ldx + cb;
          for (int64_t c = 0; c < B; c++) t[c][r] = xr[c];
        }
        for (int64_t c = 0; c < B; c++) {
          float* oc = out + (cb + c) * ldo + rb;
          for (int64_t r = 0; r < B; r++) oc[r] = t[c][r];
        }
      } else {
        for (int64_t c = cb; c < ce; c++) {
          float* oc = out + c * ldo;
          if (acc)
            for (int64_t r = rb; r < re; r++) oc[r] += x[r * ldx + c];
          else
            for (int64_t r = rb; r < re; r++) oc[r] = x[r * ldx + c];
        }
      }
    }
    if (!acc)
      for (int64_t c = cb; c < ce; c++)
        for (int64_t r = rows; r < ldo; r++) out[c * ldo + r] = 0.0f;
  }
}

// Adam (the dense kernel's float expression) at p[idx[k]]; then grad[idx[k]] = 0.
LTH_SP_TARGET static void adam_sparse(float* p, float* g, float* m, float* v, const int32_t* idx, int64_t k0,
                                      int64_t k1, float beta1, float beta2, float ob1, float ob2, float stepSize,
                                      float invBc2, float eps) {
  for (int64_t k = k0; k < k1; k++) {
    const int64_t i = idx[k];
    const float gi = g[i];
    const float mi = beta1 * m[i] + ob1 * gi;
    const float vi = beta2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - stepSize * mi / (__builtin_sqrtf(vi) * invBc2 + eps);
    g[i] = 0.0f;
  }
}

// SGD (the dense kernel's float expression) at p[idx[k]]; then grad[idx[k]] = 0.
LTH_SP_TARGET static void sgd_sparse(float* p, float* g, float* buf, const int32_t* idx, int64_t k0, int64_t k1,
                                     float lr, float momentum, float weightDecay) {
  for (int64_t k = k0; k < k1; k++) {
    const int64_t i = idx[k];
    const float gi = g[i] + weightDecay * p[i];
    const float bi = momentum * buf[i] + gi;
    buf[i] = bi;
    p[i] = p[i] - lr * bi;
    g[i] = 0.0f;
  }
}

static const SparseKernels kTable = {spmm, sddmm, transpose, adam_sparse, sgd_sparse};
