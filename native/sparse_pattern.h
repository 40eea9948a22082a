// A sparse layer's mask, compressed once (sparsePattern, sparse_pattern.cc) for the sparse
// kernels (sparse_impl.h) and their bindings.
#pragma once

#include <cstdint>
#include <vector>

#include "napi_args.h"

namespace lth {

// The export that makes patterns: a pattern argument is an object it made.
inline constexpr char kSparsePattern[] = "sparsePattern";

// A mask's nonzeros in packed order: by column blocks of bc columns, then rows, then
// columns, so a product reads the activation rows of one block (bc·64 floats per 64-column
// chunk: L1-sized) for every output row before moving on. Segment (b, r) is packed
// positions [seg[b·rows + r], seg[b·rows + r + 1]). The transposed view, for the input
// gradient, is the same with row blocks of br rows: (b, column i) is [tseg[b·cols + i],
// tseg[b·cols + i + 1]) of trow / tpos (the packed position). rowPtr / colPtr count the
// nonzeros before each row / column, for splitting work across threads.
struct Pattern : Wrapped {
  Pattern() : Wrapped{kSparsePattern} {}
  int64_t rows = 0, cols = 0, nnz = 0;
  int64_t bc = 1, nbc = 0, br = 1, nbr = 0;
  std::vector<int32_t> segV, colV, rowV, flatV, rowPtrV, tsegV, trowV, tposV, colPtrV;
  const int32_t *seg = nullptr, *col = nullptr, *row = nullptr, *flat = nullptr, *rowPtr = nullptr;
  const int32_t *tseg = nullptr, *trow = nullptr, *tpos = nullptr, *colPtr = nullptr;
  // The memory its arrays hold.
  int64_t bytes() const {
    size_t n = 0;
    for (const auto* v : {&segV, &colV, &rowV, &flatV, &rowPtrV, &tsegV, &trowV, &tposV, &colPtrV}) n += v->capacity();
    return (int64_t)(n * sizeof(int32_t));
  }
};

// A pattern argument of a binding's table; ArgValue::handle<Pattern>() gives the pattern.
constexpr ArgSpec pattern_arg(const char* name = "pattern") { return arg::handle(name, kSparsePattern); }

// The packed position of the first nonzero of column block b (nnz for b = nbc).
inline int64_t block_start(const Pattern& p, int64_t b) { return b < p.nbc ? (int64_t)p.seg[b * p.rows] : p.nnz; }

// The size of the pattern's blocks along an extent (columns for the packed order, rows for
// the transposed view) at a density.
int64_t block_size(int64_t extent, double density);

// The entries of a[0 .. n) that are not 0 (NaN counts).
int64_t count_nonzero(const float* a, int64_t n);

// Fills p with the nonzeros of mask [rows, cols] (entries != 0, NaN included).
void build_pattern(Pattern& p, const float* mask, int64_t rows, int64_t cols);

}  // namespace lth
