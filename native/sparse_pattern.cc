// sparsePattern: a mask compressed once into a Pattern (sparse_pattern.h) in the packed
// order the sparse kernels read, validated when built, so the per-step calls check only
// their dense buffers.

#include "sparse_pattern.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "bindings.h"

using lth::Pattern;

// Rows of activations one block of the pattern reads. 64 rows of a 64-column panel are
// 16 KB, so they stay in L1 while every output row takes its nonzeros from them; but each
// (block, row) segment loads and stores its output row once, so sparse patterns take
// bigger blocks, about 5 nonzeros per segment. Measured on LeNet's fc1 (784 -> 300), one
// thread, interleaved runs: at 1.9% density blocks of 256 make the forward 1.15x faster
// than 64 at batch 64 and 1.8x at batch 1008; at 3.6%, 128-256 beat 64 by 1.15-1.4x; at
// 10% and 30%, 64 is best (128 ties at 10%, 256 is 1.2-1.7x slower at 30%).
//
// Above 64, the size is a multiple of 16 such that an even number of blocks ends near the
// middle of the extent: the fused step splits its first layer into parts at block
// boundaries, two on a 2-core machine. On LeNet's fc1 at 3.6%, blocks of 144 would put 55%
// of its columns (432 of 784) on one core; blocks of 128 split it 384 / 400.
int64_t lth::block_size(int64_t extent, double density) {
  const double want = density > 0 ? 5.0 / density : (double)extent;
  if (extent < 1) return 1;
  if (want <= 64) return extent < 64 ? extent : 64;
  if (want >= extent) return extent;
  const double half = extent / 2.0;
  const int64_t k = std::max<int64_t>(1, std::llround(half / want));  // blocks in each half
  const int64_t b = std::max<int64_t>(64, (int64_t)(half / (double)k) / 16 * 16);
  return extent < b ? extent : b;
}

int64_t lth::count_nonzero(const float* a, int64_t n) {
  int64_t count = 0, i = 0;
#ifdef __SSE2__
  // Each lane counts down by its -1 (all bits set) where a != 0; 2^31 / 4 floats per chunk.
  for (const __m128 zero = _mm_setzero_ps(); i + 4 <= n;) {
    const int64_t end = std::min<int64_t>(n & ~int64_t{3}, i + (int64_t{1} << 31));
    __m128i lanes = _mm_setzero_si128();
    for (; i < end; i += 4) lanes = _mm_sub_epi32(lanes, _mm_castps_si128(_mm_cmpneq_ps(_mm_loadu_ps(a + i), zero)));
    alignas(16) uint32_t sum[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(sum), lanes);
    count += (int64_t)sum[0] + sum[1] + sum[2] + sum[3];
  }
#endif
  for (; i < n; i++) count += a[i] != 0.0f;
  return count;
}

namespace {

// The counts per row and column, the transposed view and the raw pointers of a pattern
// whose packed arrays (seg, col, row, flat) and blocks are filled.
void finish_pattern(Pattern& p) {
  const int64_t rows = p.rows, cols = p.cols;
  p.rowPtrV.assign(rows + 1, 0);
  p.colPtrV.assign(cols + 1, 0);
  for (int64_t k = 0; k < p.nnz; k++) {
    p.rowPtrV[p.rowV[k] + 1]++;
    p.colPtrV[p.colV[k] + 1]++;
  }
  for (int64_t r = 0; r < rows; r++) p.rowPtrV[r + 1] += p.rowPtrV[r];
  for (int64_t c = 0; c < cols; c++) p.colPtrV[c + 1] += p.colPtrV[c];
  std::vector<int32_t> rowBlock(rows);
  for (int64_t r = 0; r < rows; r++) rowBlock[r] = (int32_t)(r / p.br);
  // Transposed view: per (row block, column), rows ascending (the packed order visits a
  // column's rows in ascending order).
  p.tsegV.assign(p.nbr * cols + 1, 0);
  for (int64_t k = 0; k < p.nnz; k++) p.tsegV[(int64_t)rowBlock[p.rowV[k]] * cols + p.colV[k] + 1]++;
  for (int64_t s = 0; s < p.nbr * cols; s++) p.tsegV[s + 1] += p.tsegV[s];
  p.trowV.resize(p.nnz);
  p.tposV.resize(p.nnz);
  std::vector<int32_t> tfill(p.tsegV.begin(), p.tsegV.end() - 1);
  for (int64_t k = 0; k < p.nnz; k++) {
    const int32_t at = tfill[(int64_t)rowBlock[p.rowV[k]] * cols + p.colV[k]]++;
    p.trowV[at] = p.rowV[k];
    p.tposV[at] = (int32_t)k;
  }
  p.seg = p.segV.data();
  p.col = p.colV.data();
  p.row = p.rowV.data();
  p.flat = p.flatV.data();
  p.rowPtr = p.rowPtrV.data();
  p.tseg = p.tsegV.data();
  p.trow = p.trowV.data();
  p.tpos = p.tposV.data();
  p.colPtr = p.colPtrV.data();
}

}  // namespace

void lth::build_pattern(Pattern& p, const float* mask, int64_t rows, int64_t cols) {
  p.rows = rows;
  p.cols = cols;
  // A count and one pass over the mask (kept: != 0, which NaN is too) collect the nonzeros
  // in row-major order; everything after works on them alone. Dynamic sparse training
  // rebuilds patterns every few hundred steps, so this is a cost per update. Both passes
  // test 4 entries at once where SSE2 is there (a branch per entry mispredicts at every
  // kept one of a random mask), and the blocks of rows and columns come from tables, not
  // a division per nonzero: LeNet's fc1 and fc2 patterns at 7.6% and 22% (235,200 and
  // 30,000 entries) take about 0.32 ms together against 0.43 (both reusing the memory of
  // an old pattern; 0.73 ms with fresh memory).
  const int64_t total = rows * cols;
  const int64_t count = count_nonzero(mask, total);
  std::vector<int32_t> keptRow(count), keptCol(count);
  int64_t n = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float* m = mask + r * cols;
    int64_t c = 0;
#ifdef __SSE2__
    for (const __m128 zero = _mm_setzero_ps(); c + 4 <= cols; c += 4)
      for (int bits = _mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(m + c), zero)); bits; bits &= bits - 1) {
        keptRow[n] = (int32_t)r;
        keptCol[n++] = (int32_t)(c + __builtin_ctz(bits));
      }
#endif
    for (; c < cols; c++)
      if (m[c] != 0.0f) {
        keptRow[n] = (int32_t)r;
        keptCol[n++] = (int32_t)c;
      }
  }
  p.nnz = count;
  const double density = rows && cols ? (double)p.nnz / ((double)rows * (double)cols) : 0;
  p.bc = block_size(cols, density);
  p.nbc = cols ? (cols + p.bc - 1) / p.bc : 0;
  p.br = block_size(rows, density);
  p.nbr = rows ? (rows + p.br - 1) / p.br : 0;

  // Each column's block (no division per nonzero).
  std::vector<int32_t> colBlock(cols);
  for (int64_t c = 0; c < cols; c++) colBlock[c] = (int32_t)(c / p.bc);

  // Packed order: count per (block, row), prefix sums, fill (in row-major order within each).
  p.segV.assign(p.nbc * rows + 1, 0);
  for (int64_t k = 0; k < p.nnz; k++) p.segV[(int64_t)colBlock[keptCol[k]] * rows + keptRow[k] + 1]++;
  for (int64_t s = 0; s < p.nbc * rows; s++) p.segV[s + 1] += p.segV[s];
  p.colV.resize(p.nnz);
  p.rowV.resize(p.nnz);
  p.flatV.resize(p.nnz);
  std::vector<int32_t> fill(p.segV.begin(), p.segV.end() - 1);
  for (int64_t j = 0; j < p.nnz; j++) {
    const int32_t r = keptRow[j], c = keptCol[j];
    const int32_t k = fill[(int64_t)colBlock[c] * rows + r]++;
    p.colV[k] = c;
    p.rowV[k] = r;
    p.flatV[k] = (int32_t)((int64_t)r * cols + c);
  }

  finish_pattern(p);
}

namespace {

using lth::ArgSpec;
using lth::ArgValue;
using lth::Pattern;
using lth::Wrapped;
namespace arg = lth::arg;

// Moves the arrays of `from` (their memory) into `to` and leaves `from` empty.
void take_storage(Pattern& to, Pattern& from) {
  for (auto v : {&Pattern::segV, &Pattern::colV, &Pattern::rowV, &Pattern::flatV, &Pattern::rowPtrV, &Pattern::tsegV,
                 &Pattern::trowV, &Pattern::tposV, &Pattern::colPtrV})
    (to.*v).swap(from.*v);
  from.rows = from.cols = from.nnz = 0;
  from.nbc = from.nbr = 0;
  from.seg = from.col = from.row = from.flat = from.rowPtr = nullptr;
  from.tseg = from.trow = from.tpos = from.colPtr = nullptr;
}

void set_int(napi_env env, napi_value obj, const char* key, int64_t v) {
  napi_value x;
  napi_create_double(env, (double)v, &x);
  napi_set_named_property(env, obj, key, x);
}

// The JS object of a built pattern (which it owns from here on; deleted on failure).
napi_value wrap_pattern(napi_env env, Pattern* p) {
  const int64_t rows = p->rows, cols = p->cols;
  napi_value obj, flat, buf;
  void* data = nullptr;
  napi_create_object(env, &obj);
  set_int(env, obj, "rows", rows);
  set_int(env, obj, "cols", cols);
  set_int(env, obj, "nnz", p->nnz);
  napi_create_arraybuffer(env, (size_t)p->nnz * 4, &data, &buf);
  if (p->nnz) std::memcpy(data, p->flat, (size_t)p->nnz * 4);
  napi_create_typedarray(env, napi_int32_array, (size_t)p->nnz, buf, 0, &flat);
  napi_set_named_property(env, obj, "flat", flat);
  // The pattern's arrays are outside V8's heap: telling V8 their size makes it collect
  // dropped patterns (dynamic sparse training makes two every update) before the process
  // grows, so new ones reuse freed memory instead of faulting in fresh pages.
  const int64_t bytes = p->bytes();
  int64_t ignored;
  napi_adjust_external_memory(env, bytes, &ignored);
  if (napi_wrap(env, obj, static_cast<Wrapped*>(p),
                [](napi_env env, void* d, void*) {
                  auto* q = static_cast<Pattern*>(static_cast<Wrapped*>(d));
                  int64_t ignored;
                  napi_adjust_external_memory(env, -q->bytes(), &ignored);
                  delete q;
                },
                nullptr, nullptr) != napi_ok) {
    napi_adjust_external_memory(env, -bytes, &ignored);
    delete p;
    napi_throw_error(env, nullptr, "sparsePattern: cannot wrap the pattern");
    return nullptr;
  }
  return obj;
}

// The maker of a pattern whose memory a later sparsePattern call took: no argument check
// accepts it as a pattern any more.
constexpr char kReleasedPattern[] = "sparsePattern (reused)";

// sparsePattern(mask, rows, cols, reuse?) -> { rows, cols, nnz, flat }: the nonzeros of
// mask [rows, cols] (entries != 0, NaN included), compressed once for the sparse kernels.
// With `reuse` (a pattern the caller will not use again), the new pattern takes over its
// memory: dynamic sparse training replaces its patterns every few hundred steps, and
// memory that V8 has not yet collected cannot be reused, so every new pattern otherwise
// faults in fresh pages (about half the time of building LeNet's fc1 pattern).
constexpr ArgSpec kSparsePatternArgs[] = {arg::f32("mask"), arg::dim("rows"), arg::dim("cols")};
constexpr ArgSpec kReuseArgs[] = {lth::pattern_arg("reuse")};

napi_value SparsePattern(napi_env env, napi_callback_info info) {
  lth::VarArgs a(env, info, "sparsePattern", 3);
  ArgValue v[3] = {};
  if (!a.read(kSparsePatternArgs, 3, v)) return nullptr;
  const float* mask = v[0].f32();
  const size_t lm = v[0].len;
  const int64_t rows = v[1].dim(), cols = v[2].dim();
  if (a.ok() && (double)rows * (double)cols > 2147483647.0)
    a.fail(true, "rows*cols = %.0f must be below 2^31 (indices are int32)", (double)rows * (double)cols);
  if (a.ok() && (int64_t)lm != rows * cols)
    a.fail(true, "mask has %zu elements, expected rows*cols = %lld", lm, (long long)(rows * cols));
  Pattern* reuse = nullptr;
  if (a.ok() && a.argc() > 3) {
    napi_valuetype vt;
    napi_typeof(env, a.arg(3), &vt);
    ArgValue r{};
    if (vt != napi_undefined && vt != napi_null && a.read(kReuseArgs, 1, &r, 3)) reuse = r.handle<Pattern>();
  }
  if (!a.ok()) return nullptr;
  auto* p = new Pattern();
  if (reuse) {
    int64_t ignored;
    napi_adjust_external_memory(env, -reuse->bytes(), &ignored);
    take_storage(*p, *reuse);
    reuse->maker = kReleasedPattern;
  }
  build_pattern(*p, mask, rows, cols);
  return wrap_pattern(env, p);
}

// Order keys of flat indices in a pattern's packed order: the column block, then the flat
// index (within a block the order is rows, then columns: row-major, as the flat index).
// The column comes from a reciprocal, not a division per index (a 64-bit division per
// index made the merge below cost more than the dense path it replaces).
struct PackedKeys {
  explicit PackedKeys(const Pattern& p) : cols(p.cols), total(p.rows * p.cols), inv(1.0 / (double)p.cols), block((size_t)p.cols) {
    for (int64_t c = 0; c < cols; c++) block[c] = (int32_t)(c / p.bc);
  }
  int64_t operator()(int32_t f) const {
    int64_t r = (int64_t)((double)f * inv);
    r -= (r * cols > f);
    r += ((r + 1) * cols <= f);
    return (int64_t)block[f - r * cols] * total + f;
  }
  int64_t cols, total;
  double inv;
  std::vector<int32_t> block;
};

// Keys (key(flat[j]), j) of `flat` in increasing key order, if they are in that order
// within each column block (a pattern's flat, or any list in row-major order): counted into
// their blocks, stably. False when they are not, or repeat.
bool packed_order(const PackedKeys& key, int64_t blocks, const int32_t* flat, int64_t len,
                  std::vector<std::pair<int64_t, int32_t>>& out) {
  thread_local std::vector<std::pair<int64_t, int32_t>> keyed;
  thread_local std::vector<int64_t> start;
  keyed.resize((size_t)len);
  bool sorted = true;
  for (int64_t j = 0; j < len; j++) {
    keyed[j] = {key(flat[j]), (int32_t)j};
    sorted &= !j || keyed[j - 1].first < keyed[j].first;
  }
  out.resize((size_t)len);
  if (sorted) {
    std::copy(keyed.begin(), keyed.end(), out.begin());
    return true;
  }
  start.assign((size_t)blocks + 1, 0);
  for (const auto& k : keyed) start[k.first / key.total + 1]++;
  for (int64_t b = 0; b < blocks; b++) start[b + 1] += start[b];
  for (const auto& k : keyed) out[start[k.first / key.total]++] = k;
  for (int64_t j = 1; j < len; j++)
    if (out[j - 1].first >= out[j].first) return false;
  return true;
}

// Fails `a` at the first of idx[0 .. len) outside [0, total), naming it as `name`[i].
void check_positions(lth::ArgReader& a, const char* name, const int32_t* idx, int64_t len, int64_t total) {
  for (int64_t i = 0; i < len && a.ok(); i++)
    if (idx[i] < 0 || idx[i] >= total)
      a.fail(true, "%s[%lld] = %d is outside [0, %lld)", name, (long long)i, idx[i], (long long)total);
}

// Reads argument 2, the grown positions: an Int32Array, or undefined or null for none.
// False on anything else (which `a` holds).
bool read_grown(napi_env env, lth::VarArgs& a, ArgValue* v, const int32_t*& grown, int64_t& grownLen) {
  napi_valuetype vt;
  napi_typeof(env, a.arg(2), &vt);
  if (vt == napi_undefined || vt == napi_null) return true;
  static constexpr ArgSpec kGrown[] = {arg::i32("grown")};
  if (!a.read(kGrown, 1, v + 2, 2)) return false;
  grown = v[2].i32();
  grownLen = (int64_t)v[2].len;
  return true;
}

// from[k] for `p` when prevFlat and grown are in p's packed order within each column block
// (a pattern with the same blocks, or row-major lists): one merge of the ordered lists, no
// dense index array (whose random accesses cost more than the merge on LeNet's fc1).
// False, with `from` unspecified, when they are not.
bool pattern_from_merge(const Pattern& p, const int32_t* prevFlat, int64_t prevLen, const int32_t* grown, int64_t grownLen,
                        int32_t* from) {
  const PackedKeys key(p);
  thread_local std::vector<std::pair<int64_t, int32_t>> prev, fresh;
  if (!packed_order(key, p.nbc, prevFlat, prevLen, prev) || !packed_order(key, p.nbc, grown, grownLen, fresh)) return false;
  int64_t j = 0, g = 0;
  for (int64_t k = 0; k < p.nnz; k++) {
    const int64_t at = (int64_t)key.block[p.col[k]] * key.total + p.flat[k];
    while (j < prevLen && prev[j].first < at) j++;
    while (g < grownLen && fresh[g].first < at) g++;
    from[k] = (g < grownLen && fresh[g].first == at) || j == prevLen || prev[j].first != at ? -1 : prev[j].second;
  }
  return true;
}

// The same through a dense array of positions by flat index (kept at -1 between calls).
void pattern_from_dense(const Pattern& p, const int32_t* prevFlat, int64_t prevLen, const int32_t* grown, int64_t grownLen,
                        int32_t* from) {
  thread_local std::vector<int32_t> where;
  if (where.size() < (size_t)(p.rows * p.cols)) where.resize((size_t)(p.rows * p.cols), -1);
  for (int64_t j = 0; j < prevLen; j++) where[prevFlat[j]] = (int32_t)j;
  for (int64_t g = 0; g < grownLen; g++) where[grown[g]] = -1;
  for (int64_t k = 0; k < p.nnz; k++) from[k] = where[p.flat[k]];
  for (int64_t j = 0; j < prevLen; j++) where[prevFlat[j]] = -1;
}

// sparsePatternFrom(pattern, prevFlat, grown, from) -> undefined: where each nonzero of
// `pattern` was in an earlier packed order prevFlat (another pattern's flat): from[k] = j
// where prevFlat[j] = pattern.flat[k], or -1 where there is none or the entry is in `grown`
// (Int32Array or null: new connections, whatever they were before). Entries of prevFlat
// and grown must be in [0, rows·cols) (where prevFlat repeats an entry, the last counts).
napi_value SparsePatternFrom(napi_env env, napi_callback_info info) {
  static constexpr ArgSpec kArgs[] = {lth::pattern_arg(), arg::i32("prevFlat")};
  static constexpr ArgSpec kFrom[] = {arg::i32("from")};
  lth::VarArgs a(env, info, "sparsePatternFrom", 4);
  ArgValue v[4] = {};
  if (!a.read(kArgs, 2, v) || !a.read(kFrom, 1, v + 3, 3)) return nullptr;
  const Pattern& p = *v[0].handle<Pattern>();
  const int32_t* prevFlat = v[1].i32();
  const int64_t prevLen = (int64_t)v[1].len, total = p.rows * p.cols;
  const int32_t* grown = nullptr;
  int64_t grownLen = 0;
  if (!read_grown(env, a, v, grown, grownLen)) return nullptr;
  a.need("from", v[3].len, p.nnz, 1, "nnz");
  check_positions(a, "prevFlat", prevFlat, prevLen, total);
  check_positions(a, "grown", grown, grownLen, total);
  if (!a.ok()) return nullptr;
  int32_t* from = v[3].i32();
  if (!pattern_from_merge(p, prevFlat, prevLen, grown, grownLen, from)) pattern_from_dense(p, prevFlat, prevLen, grown, grownLen, from);
  return lth::undefined_value(env);
}

// The packed arrays (col, row, flat) of the pattern whose nonzeros are those of `old` that
// keepOld(flat) keeps and `grown` (each accepted by grownOk(flat)), `nnz` of them, with the
// same column blocks: one merge of old's packed order with the grown entries', and from[k]
// as sparsePatternFrom(new, old.flat, grown) gives it. A grown entry that old keeps too
// counts once, as new, when `regrowKept`; else it fails. False (the outputs unspecified)
// when the count, the blocks or an entry are not those.
//
// Block by block, where the packed order is the flat order: old's entries are written
// whether kept or not and the output advances by keepOld's answer, so only the grown
// entries (a few in a hundred) cost a mispredicted branch. With sparsePatternChanged's
// one-pass move, this took that call from 217 to 184 us on LeNet's fc1 at 7.6% with 15% of
// the entries changed and three packed arrays.
template <class KeepOld, class GrownOk>
bool pattern_moved(const Pattern& old, int64_t nnz, const int32_t* grown, int64_t grownLen, KeepOld keepOld, GrownOk grownOk,
                   bool regrowKept, std::vector<int32_t>& col, std::vector<int32_t>& row, std::vector<int32_t>& flat,
                   int32_t* from) {
  const int64_t rows = old.rows, cols = old.cols;
  const double density = rows && cols ? (double)nnz / ((double)rows * (double)cols) : 0;
  if (!rows || !cols || lth::block_size(cols, density) != old.bc || lth::block_size(rows, density) != old.br) return false;
  const PackedKeys key(old);
  thread_local std::vector<std::pair<int64_t, int32_t>> fresh;
  if (!packed_order(key, old.nbc, grown, grownLen, fresh)) return false;
  // One spare slot: an entry is written before the count says whether it stays.
  col.resize((size_t)nnz + 1);
  row.resize((size_t)nnz + 1);
  flat.resize((size_t)nnz + 1);
  int64_t o = 0, g = 0;
  int32_t pastEnd = 0;  // where from[nnz] would be
  auto grow = [&](int32_t f) {
    if (o == nnz || !grownOk(f)) return false;
    const int32_t r = (int32_t)(f / cols);
    row[o] = r;
    col[o] = (int32_t)(f - (int64_t)r * cols);
    flat[o] = f;
    from[o++] = -1;
    return true;
  };
  for (int64_t b = 0; b < old.nbc; b++) {
    // Keys of block b are base + flat index.
    const int64_t base = b * key.total, k1 = block_start(old, b + 1);
    for (int64_t k = block_start(old, b); k < k1; k++) {
      const int32_t f = old.flat[k];
      for (; g < grownLen && fresh[g].first < base + f; g++)
        if (!grow(grown[fresh[g].second])) return false;
      const bool keep = keepOld(f);
      if (g < grownLen && fresh[g].first == base + f) {
        // Grown again: new all the same, where that is allowed.
        if (keep && !regrowKept) return false;
        if (!grow(f)) return false;
        g++;
        continue;
      }
      if (o == nnz && keep) return false;
      row[o] = old.row[k];
      col[o] = old.col[k];
      flat[o] = f;
      *(o < nnz ? from + o : &pastEnd) = (int32_t)k;
      o += keep;
    }
    for (; g < grownLen && fresh[g].first < base + key.total; g++)
      if (!grow(grown[fresh[g].second])) return false;
  }
  if (g != grownLen || o != nnz) return false;
  col.resize((size_t)nnz);
  row.resize((size_t)nnz);
  flat.resize((size_t)nnz);
  return true;
}

// Fills p, which has old's storage, with the merged packed arrays (rows, cols and nnz of
// the new pattern): the blocks, the segments and what finish_pattern makes.
void finish_moved(Pattern& p, int64_t rows, int64_t cols, int64_t nnz, std::vector<int32_t>& col, std::vector<int32_t>& row,
                  std::vector<int32_t>& flat) {
  p.rows = rows;
  p.cols = cols;
  p.nnz = nnz;
  p.colV.swap(col);
  p.rowV.swap(row);
  p.flatV.swap(flat);
  const double density = (double)nnz / ((double)rows * (double)cols);
  p.bc = lth::block_size(cols, density);
  p.nbc = (cols + p.bc - 1) / p.bc;
  p.br = lth::block_size(rows, density);
  p.nbr = (rows + p.br - 1) / p.br;
  // Segments in packed order: their index (column block, row) never decreases along it.
  thread_local std::vector<int32_t> block;
  block.resize((size_t)cols);
  for (int64_t c = 0; c < cols; c++) block[c] = (int32_t)(c / p.bc);
  p.segV.assign(p.nbc * rows + 1, 0);
  for (int64_t k = 0; k < nnz; k++) p.segV[(int64_t)block[p.colV[k]] * rows + p.rowV[k] + 1]++;
  for (int64_t s = 0; s < p.nbc * rows; s++) p.segV[s + 1] += p.segV[s];
  finish_pattern(p);
}

// Reads the optional Int32Array argument `at` of a VarArgs call (absent, undefined or null:
// none) into (data, len); false when it is something else.
bool optional_i32(lth::VarArgs& a, size_t at, const char* name, const int32_t*& data, int64_t& len) {
  data = nullptr;
  len = 0;
  if (a.argc() <= at) return true;
  napi_valuetype vt;
  napi_typeof(a.env(), a.arg(at), &vt);
  if (vt == napi_undefined || vt == napi_null) return true;
  const ArgSpec spec[] = {arg::i32(name)};
  ArgValue v{};
  if (!a.read(spec, 1, &v, at)) return false;
  data = v.i32();
  len = (int64_t)v.len;
  return true;
}

// The `{ pattern, from }` object of a new pattern.
napi_value moved_result(napi_env env, Pattern* p, napi_value fromArr) {
  napi_value obj = wrap_pattern(env, p), out;
  if (!obj) return nullptr;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "pattern", obj);
  napi_set_named_property(env, out, "from", fromArr);
  return out;
}

// A new Int32Array of n entries; its data in `data`.
napi_value new_i32(napi_env env, int64_t n, int32_t*& data) {
  napi_value buf, arr;
  void* d = nullptr;
  napi_create_arraybuffer(env, (size_t)n * 4, &d, &buf);
  napi_create_typedarray(env, napi_int32_array, (size_t)n, buf, 0, &arr);
  data = static_cast<int32_t*>(d);
  return arr;
}

// A pattern that takes old's storage (old is released: no argument check accepts it again).
Pattern* take_over(napi_env env, Pattern& old) {
  auto* p = new Pattern();
  int64_t ignored;
  napi_adjust_external_memory(env, -old.bytes(), &ignored);
  take_storage(*p, old);
  old.maker = kReleasedPattern;
  return p;
}

// sparsePatternMoved(old, mask, grown) -> { pattern, from }: sparsePattern(mask, rows, cols,
// old) (old's shape; it gives its memory) and `from` as sparsePatternFrom(pattern, old.flat,
// grown, from) would fill it. A mask update that drops some of old's nonzeros and adds the
// `grown` ones (Int32Array or null) at the same density costs a merge of the two lists
// instead of a pass over the mask; any other mask is built from its entries.
napi_value SparsePatternMoved(napi_env env, napi_callback_info info) {
  static constexpr ArgSpec kArgs[] = {lth::pattern_arg("old"), arg::f32("mask")};
  lth::VarArgs a(env, info, "sparsePatternMoved", 3);
  ArgValue v[3] = {};
  if (!a.read(kArgs, 2, v)) return nullptr;
  Pattern& old = *v[0].handle<Pattern>();
  const float* mask = v[1].f32();
  const int64_t rows = old.rows, cols = old.cols, total = rows * cols;
  const int32_t* grown = nullptr;
  int64_t grownLen = 0;
  if (!read_grown(env, a, v, grown, grownLen)) return nullptr;
  if (a.ok() && (int64_t)v[1].len != total)
    a.fail(true, "mask has %zu elements, expected rows*cols = %lld", v[1].len, (long long)total);
  check_positions(a, "grown", grown, grownLen, total);
  if (!a.ok()) return nullptr;
  const int64_t nnz = lth::count_nonzero(mask, total);
  int32_t* from = nullptr;
  napi_value fromArr = new_i32(env, nnz, from);
  // The new packed arrays go to scratch first (the merge reads old's), then trade places
  // with old's, whose memory the next update's scratch reuses.
  thread_local std::vector<int32_t> col, row, flat;
  auto kept = [mask](int32_t f) { return mask[f] != 0.0f; };
  const bool merged = pattern_moved(old, nnz, grown, grownLen, kept, kept, true, col, row, flat, from);
  if (!merged) flat.assign(old.flat, old.flat + old.nnz);
  Pattern* p = take_over(env, old);
  if (merged) {
    finish_moved(*p, rows, cols, nnz, col, row, flat);
  } else {
    build_pattern(*p, mask, rows, cols);
    if (!pattern_from_merge(*p, flat.data(), (int64_t)flat.size(), grown, grownLen, from))
      pattern_from_dense(*p, flat.data(), (int64_t)flat.size(), grown, grownLen, from);
  }
  return moved_result(env, p, fromArr);
}

// sparsePatternChanged(old, dropped, grown, ...packed) -> { pattern, from }:
// sparsePatternMoved(old, mask, grown) for the mask of old's nonzeros without `dropped` and
// with `grown` (each an Int32Array or null, of distinct entries, dropped ones of old's
// nonzeros, grown ones not among those it keeps), with no mask to read: a mask update at
// the same density merges old's packed order with the grown entries, and finds the dropped
// ones in a bitmap. Each `packed` Float32Array (old.nnz values in old's packed order: a
// layer's weights, its optimiser's moments) is moved in place to the new order, grown
// entries zero, as out[k] = in[from[k]] would; that needs as many grown entries as dropped.
napi_value SparsePatternChanged(napi_env env, napi_callback_info info) {
  static constexpr ArgSpec kArgs[] = {lth::pattern_arg("old")};
  lth::VarArgs a(env, info, "sparsePatternChanged", 3);
  ArgValue v{};
  if (!a.read(kArgs, 1, &v)) return nullptr;
  Pattern& old = *v.handle<Pattern>();
  const int64_t rows = old.rows, cols = old.cols, total = rows * cols;
  const int32_t *dropped = nullptr, *grown = nullptr;
  int64_t droppedLen = 0, grownLen = 0;
  if (!optional_i32(a, 1, "dropped", dropped, droppedLen) || !optional_i32(a, 2, "grown", grown, grownLen)) return nullptr;
  std::vector<float*> packed;
  for (size_t i = 3; i < a.argc() && a.ok(); i++) {
    static constexpr ArgSpec kPacked[] = {arg::f32("packed")};
    ArgValue pv{};
    if (!a.read(kPacked, 1, &pv, i)) return nullptr;
    if ((int64_t)pv.len != old.nnz) a.fail(true, "packed array %zu has %zu elements, old has nnz = %lld", i - 3, pv.len, (long long)old.nnz);
    for (float* q : packed)
      if (a.ok() && lth::overlaps(q, (size_t)old.nnz * 4, pv.data, pv.len * 4)) a.fail(true, "packed arrays %zu and an earlier one share memory", i - 3);
    packed.push_back(pv.f32());
  }
  if (a.ok() && !packed.empty() && droppedLen != grownLen)
    a.fail(true, "packed arrays move in place only at the same count: %lld dropped, %lld grown", (long long)droppedLen, (long long)grownLen);
  check_positions(a, "dropped", dropped, droppedLen, total);
  check_positions(a, "grown", grown, grownLen, total);
  if (!a.ok()) return nullptr;
  // The dropped entries, marked; each must be one of old's nonzeros, met once in its order.
  thread_local std::vector<uint64_t> marks;
  marks.assign((size_t)total / 64 + 1, 0);
  for (int64_t j = 0; j < droppedLen; j++) marks[(size_t)dropped[j] / 64] |= uint64_t{1} << (dropped[j] % 64);
  auto isDropped = [](int32_t f) { return (marks[(size_t)f / 64] >> (f % 64)) & 1; };
  int64_t found = 0;
  for (int64_t k = 0; k < old.nnz; k++) found += isDropped(old.flat[k]);
  if (found != droppedLen) {
    a.fail(true, "dropped must be distinct nonzeros of old: %lld entries, %lld of them found", (long long)droppedLen, (long long)found);
    return nullptr;
  }
  const int64_t nnz = old.nnz - droppedLen + grownLen;
  int32_t* from = nullptr;
  napi_value fromArr = new_i32(env, nnz, from);
  thread_local std::vector<int32_t> col, row, flat;
  const bool merged = pattern_moved(old, nnz, grown, grownLen, [&](int32_t f) { return !isDropped(f); },
                                    [](int32_t) { return true; }, false, col, row, flat, from);
  // The packed arrays, from copies of their old order, in one pass over `from`. A grown
  // entry (-1) reads the zero after its array's copy: a branch there mispredicted at
  // every grown entry.
  auto move = [&]() {
    const size_t np = packed.size(), stride = (size_t)nnz + 1;
    if (np == 0) return;
    thread_local std::vector<float> copies;
    copies.resize(np * stride);
    for (size_t i = 0; i < np; i++) {
      std::copy(packed[i], packed[i] + nnz, copies.data() + i * stride);
      copies[i * stride + (size_t)nnz] = 0.0f;
    }
    for (int64_t k = 0; k < nnz; k++) {
      const size_t at = from[k] >= 0 ? (size_t)from[k] : (size_t)nnz;
      for (size_t i = 0; i < np; i++) packed[i][k] = copies[i * stride + at];
    }
  };
  if (merged) {
    Pattern* p = take_over(env, old);
    finish_moved(*p, rows, cols, nnz, col, row, flat);
    move();
    return moved_result(env, p, fromArr);
  }
  // Other blocks (the count changed them), or a repeated or kept grown entry: through the
  // mask, checked.
  thread_local std::vector<float> mask;
  mask.assign((size_t)total, 0.0f);
  for (int64_t k = 0; k < old.nnz; k++) mask[old.flat[k]] = isDropped(old.flat[k]) ? 0.0f : 1.0f;
  for (int64_t g = 0; g < grownLen; g++) {
    if (mask[grown[g]] != 0.0f) {
      a.fail(true, "grown[%lld] = %d is already a nonzero (kept, or grown twice)", (long long)g, grown[g]);
      return nullptr;
    }
    mask[grown[g]] = 1.0f;
  }
  flat.assign(old.flat, old.flat + old.nnz);
  Pattern* p = take_over(env, old);
  build_pattern(*p, mask.data(), rows, cols);
  if (!pattern_from_merge(*p, flat.data(), (int64_t)flat.size(), grown, grownLen, from))
    pattern_from_dense(*p, flat.data(), (int64_t)flat.size(), grown, grownLen, from);
  move();
  return moved_result(env, p, fromArr);
}

}  // namespace

bool lth::register_sparse_pattern(napi_env env, napi_value exports) {
  static constexpr Export kExports[] = {{"sparsePattern", SparsePattern}, {"sparsePatternFrom", SparsePatternFrom},
                                         {"sparsePatternMoved", SparsePatternMoved}, {"sparsePatternChanged", SparsePatternChanged}};
  return define_exports(env, exports, kExports);
}
