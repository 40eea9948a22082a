// Eight float lanes as one value (GCC vector extensions) for the loops compiled once per ISA
// (norm_impl.h, seq_impl.h): included inside the including unit's namespace, with
// LTH_VEC8_TARGET set to that ISA's target attribute. No include guard: each namespace gets
// its own copy. No standard headers here (see native/README.md).

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

// Unaligned loads and stores.
LTH_VEC8_TARGET static inline v8f load8(const float* p) {
  v8f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

LTH_VEC8_TARGET static inline void store8(float* p, v8f v) { __builtin_memcpy(p, &v, sizeof v); }

LTH_VEC8_TARGET static inline v4d low4(v8f a) { return v4d{a[0], a[1], a[2], a[3]}; }
LTH_VEC8_TARGET static inline v4d high4(v8f a) { return v4d{a[4], a[5], a[6], a[7]}; }

// The lanes of two double vectors summed as a tree: four pairs, then two, then one.
LTH_VEC8_TARGET static inline double pair_sum(v4d a, v4d b) {
  const v4d s = a + b;
  return (s[0] + s[2]) + (s[1] + s[3]);
}
