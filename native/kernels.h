// The kernel table shared by the ISA-specific translation units (kernels_*.cc) and
// the binding units (gemm.cc, elementwise.cc; lth_native.cc chooses the table, see dispatch.h).
//
// The ISA units are compiled with different -m flags. To keep code compiled for a
// wider ISA from leaking into the baseline build through the linker's merging of
// inline functions, they include no C++ standard headers and keep every helper in
// an anonymous namespace; the only symbols they export are the get_kernels_*()
// functions below.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace lth {

struct GemmArgs {
  const float* a;
  const float* b;
  float* c;
  int64_t m, k, n;
  bool transA, transB, accumulate;
  // a holds op(A) already packed by Kernels::packA (transA is then ignored): for an
  // operand that several products, or the parts of one, share, packed once.
  bool aPacked = false;
  // With bPanel > 0, b holds op(B) already in the micro-kernel's column panels (transB
  // is then ignored): op(B)[p][j] at b[(j / nr)*bPanel + p*nr + j % nr], nr =
  // Kernels::nr, bPanel >= k*nr, b and bPanel aligned to 64 bytes; the last panel's
  // columns past n are read but never reach C. For an operand a transform can write in
  // that layout as cheaply as in its own (Winograd's V).
  int64_t bPanel = 0;
};

struct Kernels {
  const char* name;  // "avx512" | "avx2" | "scalar"
  int mr, nr;        // register tile of the GEMM micro-kernel
  size_t scratchFloats;  // size of the per-thread scratch buffer gemm() needs

  // Computes rows [r0, r1) x columns [c0, c1) of C. r0 must be a multiple of mr and
  // c0 of nr (the partition follows the global tile grid, so every element of C is
  // computed by exactly the same instructions whatever the partition). `scratch`
  // is 64-byte aligned and holds scratchFloats floats.
  void (*gemm)(const GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* scratch);

  void (*biasAct)(const float* x, const float* bias, float* out, int64_t rows, int64_t cols, bool relu);
  void (*reluBackward)(const float* gradOut, const float* y, float* gradIn, int64_t n);
  // A convolution's epilogue on one image x [rows = channels, cols = pixels]: y = x +
  // bias[r] (a null bias adds 0, turning -0 into +0), then max(0, ·) with relu (NaN stays
  // NaN): channelBiasAct's arithmetic; y may be x. With `bits`, the ReLU's mask as bits too:
  // value k's bit (bit k % 8 of bits[k / 8], k = r*cols + c) is y[k] > 0 (0 for NaN), the
  // last byte's bits past rows*cols 0. A 64-channel 32x32 first layer's mask is 8 KB an
  // image where its output is 256 KB, and the backward pass reads the mask, not the output.
  void (*rowBiasAct)(const float* x, float* y, const float* bias, int64_t rows, int64_t cols, bool relu, uint8_t* bits);
  // out[k] = g[k] where value k's bit is set, else 0 (g read whatever the bit): reluBackward
  // with the mask as bits. out may be g.
  void (*maskByBits)(const float* g, const uint8_t* bits, float* out, int64_t n);
  // Column sums of x [rows, cols] (rows ld floats apart) with double accumulators in row
  // order (the reference's order).
  void (*sumRows)(const float* x, float* out, int64_t rows, int64_t cols, int64_t ld, bool accumulate);
  // ob1 = 1 - beta1, ob2 = 1 - beta2 (rounded from double: 1 - 0.999f is 1.3e-5 off);
  // stepSize = lr / (1 - beta1^step); invBc2 = 1 / sqrt(1 - beta2^step).
  // adam and sgd consume the gradient: g is zero afterwards.
  void (*adam)(float* p, float* g, float* m, float* v, const float* mask, int64_t n,
               float beta1, float beta2, float ob1, float ob2, float stepSize, float invBc2, float eps);
  void (*sgd)(float* p, float* g, float* buf, const float* mask, int64_t n,
              float lr, float momentum, float weightDecay);
  void (*applyMask)(float* x, const float* mask, int64_t n);

  // Winograd F(2x2, 3x3) transforms (winograd.cc). winoIn transforms tile rows
  // [ty0, ty1) of one zero-padded plane, stored split by row and column parity:
  // q[(2*rp + cp)*qs + m*ld + k] = P[2m + rp][2k + cp] (ld >= tw + 1), where tile (ty, tx)
  // covers rows 2ty..2ty+3 and columns 2tx..2tx+3 of P; it writes the 16 entries of each
  // tile's Bᵀ·d·B to v[e*estride + (ty - ty0)*tw + tx], e = 4*row + column, using h
  // (8*(ty1 - ty0 + 1)*tw floats) as scratch.
  void (*winoIn)(const float* q, int64_t qs, int64_t ld, int64_t tw, int64_t ty0, int64_t ty1, float* h, float* v,
                 int64_t estride);
  // winoIn without the parity split, for padding 1 and an even width w (so tw = w/2):
  // winoInRows takes Bᵀ·d (the row combinations) of tile rows [ty0, ty1) straight from an
  // h x w plane x (rows outside it read from zero, w zero floats), row i of tile row ty
  // to g[i*gs + (ty - ty0)*w + column]; winoInCols takes that times B for n tiles (whole
  // rows of tw tiles, g[i*gs + 2t - 1 .. 2t + 2] for tile t, zero past each row's ends),
  // entry e = 4*i + k to v[e*estride + t], or, with a panel stride, to
  // v[e*estride + (t / nr)*pstride + t % nr]: one channel's row of the GEMM's column
  // panels (GemmArgs::bPanel). The same sums as winoIn's, added in the other order
  // (columns first there).
  void (*winoInRows)(const float* x, int64_t w, int64_t h, int64_t ty0, int64_t ty1, const float* zero, float* g,
                     int64_t gs);
  void (*winoInCols)(const float* g, int64_t gs, int64_t tw, int64_t n, float* v, int64_t estride, int64_t pstride);
  // winoOut reads the 16 products m[e*estride + t] of n tiles and writes their 2x2
  // outputs Aᵀ·M·A to o[(2*i + j)*n + t] (output row i, column j of tile t).
  void (*winoOut)(const float* m, int64_t estride, int64_t n, float* o);
  // The outputs of consecutive tile rows (tw = ceil(width/2) tiles each, tile row r's
  // tile x at o[(2*i + j)*n + r*tw + x] as winoOut writes them) to `rows` consecutive
  // output rows of `width` floats from y: row k = 2r + i gets y[k*width + 2x + j] =
  // o[(2*i + j)*n + r*tw + x] (or +=, with accumulate), then the result + *bias (when bias
  // is not null) and max(0, ·) (when relu; NaN stays NaN).
  void (*winoStore)(const float* o, int64_t n, int64_t width, int64_t rows, float* y, bool accumulate,
                    const float* bias, bool relu);
  // winoStore followed by 2x2 max pooling, for 2x2 tiles that are the pooling windows:
  // each of n tiles' four outputs o[(2*i + j)*n + t] (+ *bias when bias is not null, then
  // max(0, ·) when relu) pooled to pooled[t], the first maximum in window order 2*i + j (a
  // NaN wins, the first NaN), and that order to argmax[t]. `count` tiles from t = 0.
  void (*winoStorePool)(const float* o, int64_t n, int64_t count, float* pooled, uint8_t* argmax, const float* bias,
                        bool relu);
  // Rows of n floats (s + y*sstride, y < rows) into row- and column-parity planes: value
  // s[y*sstride + x] goes to plane (2*(py & 1) + (px & 1)) at q[plane*qs + (py >> 1)*ld +
  // (px >> 1)], py = y + ry, px = x + rc (the rows' place in a padded plane, or a tile grid).
  void (*winoSplitRows)(const float* s, int64_t sstride, int64_t n, int64_t rows, int64_t ry, int64_t rc, float* q,
                        int64_t qs, int64_t ld);
  // The output-gradient transform A·g·Aᵀ of n tiles g = [a b; c d] (a[t], b[t], c[t],
  // d[t]), A = [1 0; 1 1; 1 -1; 0 -1]: the 16 entries to g[e*estride + t].
  void (*winoGradOut)(const float* a, const float* b, const float* c, const float* d, int64_t n, float* g,
                      int64_t estride);

  // winoGradOut for outputs that are whole tiles, from the output gradient's rows: the
  // row pairs of `rows` tile rows of y (ow floats each, ow = 2*tw) combined (A·g) to
  // g[k*gs + r*ow + column], then tile t's columns g[k*gs + 2t .. 2t + 1] times Aᵀ, entry
  // e = 4*k + j to out[e*estride + t], for n tiles.
  void (*winoGradOutRows)(const float* y, int64_t ow, int64_t rows, float* g, int64_t gs);
  void (*winoGradOutCols)(const float* g, int64_t gs, int64_t n, float* out, int64_t estride);
  // Winograd F(4x4, 3x3) transforms, laid out as the F(2x2, 3x3) ones with phases mod 4:
  // winoIn4 reads q[(4*rp + cp)*qs + m*ld + k] = P[4m + rp][4k + cp] (ld >= tw + 1), tile
  // (ty, tx) covering rows 4ty..4ty+5 and columns 4tx..4tx+5 of P, and writes the 36
  // entries of Bᵀ·d·B to v[e*estride + (ty - ty0)*tw + tx], e = 6*row + column, using h
  // (24*(ty1 - ty0 + 1)*tw floats) as scratch.
  void (*winoIn4)(const float* q, int64_t qs, int64_t ld, int64_t tw, int64_t ty0, int64_t ty1, float* h, float* v,
                  int64_t estride);
  // winoInRows and winoInCols with phases mod 4 (padding 1, width w = 4*tw): tile row ty
  // reads image rows 4ty-1..4ty+4 and writes 6 rows, tile t reads g[i*gs + 4t-1 .. 4t+4]
  // (zero past each row's ends) and writes entry e = 6*i + k to v[e*estride + t].
  void (*winoIn4Rows)(const float* x, int64_t w, int64_t h, int64_t ty0, int64_t ty1, const float* zero, float* g,
                      int64_t gs);
  void (*winoIn4Cols)(const float* g, int64_t gs, int64_t tw, int64_t n, float* v, int64_t estride);
  // winoOut4 reads the 36 products m[e*estride + t] of n tiles and writes their 4x4
  // outputs Aᵀ·M·A to o[(4*i + j)*n + t].
  void (*winoOut4)(const float* m, int64_t estride, int64_t n, float* o);
  // winoStore for 4x4 tiles (tw = ceil(width/4); row k = 4r + i gets y[k*width + 4x + j] =
  // o[(4*i + j)*n + r*tw + x]), with its accumulate, bias and ReLU.
  void (*winoStore4)(const float* o, int64_t n, int64_t width, int64_t rows, float* y, bool accumulate,
                     const float* bias, bool relu);
  // winoStorePool for 4x4 tiles, each four pooling windows: for `rows` tile rows of tw
  // tiles, window (pi, pj) of tile r*tw + x pools its outputs o[(4*(2pi + a) + 2pj + b)*n +
  // r*tw + x] in window order 2a + b to pooled[(2r + pi)*2tw + 2x + pj] and argmax there.
  void (*winoStorePool4)(const float* o, int64_t n, int64_t rows, int64_t tw, float* pooled, uint8_t* argmax,
                         const float* bias, bool relu);
  // winoSplitRows with phases mod 4: plane 4*(py & 3) + (px & 3), at (py >> 2)*ld + (px >> 2).
  void (*winoSplitRows4)(const float* s, int64_t sstride, int64_t n, int64_t rows, int64_t ry, int64_t rc, float* q,
                         int64_t qs, int64_t ld);
  // The output-gradient transform A·y·Aᵀ of n 4x4 tiles y[i][j] = r[(4*i + j)*n + t]
  // (A = (Aᵀ)ᵀ, 6x4): the 36 entries to g[e*estride + t].
  void (*winoGradOut4)(const float* r, int64_t n, float* g, int64_t estride);
  // winoGradOutRows and winoGradOutCols for 4x4 tiles (6 rows per tile row; columns
  // 4t .. 4t + 3; e = 6*k + j).
  void (*winoGradOut4Rows)(const float* y, int64_t ow, int64_t rows, float* g, int64_t gs);
  void (*winoGradOut4Cols)(const float* g, int64_t gs, int64_t n, float* out, int64_t estride);

  // gemm for C (+)= A·Bᵀ (transB, not transA) when m or n is small and k long (weight
  // gradients: both operands are read along k as stored). The same contract as gemm:
  // every element of C is computed by the same instructions however the calls split C.
  // The AVX-512 and AVX2 paths compute without packing (dot products in 16 or 8 lanes,
  // then their sum); the scalar path's is its gemm.
  void (*gemmNT)(const GemmArgs& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* scratch);
  // Whether gemmNT is the faster for an m x n product over k (dispatch.h nt_product).
  bool (*ntFaster)(int64_t m, int64_t n, int64_t k);

  // op(A) [m x k] (a[i*k + p], or a[p*m + i] with transA) packed as gemm packs it: rows
  // [r0, r1) (r0 a multiple of mr) of ⌈m/mr⌉ panels of k x mr floats, panel q at
  // dst + q*mr*k, rows past m zero. Read by gemm when GemmArgs::aPacked.
  void (*packA)(const float* a, int64_t m, int64_t k, bool transA, int64_t r0, int64_t r1, float* dst);
  // op(B) [k x n] (b[p*n + j], or b[j*k + p] with transB) in the column panels that gemm
  // reads when GemmArgs::bPanel = k*nr: panels [q0, q1) of ⌈n/nr⌉, panel q at dst + q*k*nr
  // (k rows of nr floats), columns past n zero.
  void (*packB)(const float* b, int64_t k, int64_t n, bool transB, int64_t q0, int64_t q1, float* dst);

  // Tiles per block of an F(4x4) convolution (an input gradient) with at most 64 channels
  // each side, where the best block size depends on the path (winograd.cc make_job).
  int64_t wino4NarrowTiles;

  // Whether gemm reads op(A) = A (not transA, not aPacked) in place, row panels of the
  // micro-kernel's own row counts unpacked, instead of packing it: a caller that would
  // pack A once for several parts of a product gains nothing by it then (gemm.cc).
  bool aInPlace;
};

// nullptr when the ISA is not compiled in (non-x86 builds).
const Kernels* get_kernels_avx512();
const Kernels* get_kernels_avx2();
const Kernels* get_kernels_scalar();

}  // namespace lth
