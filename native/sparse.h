// Sparse kernels of lth_native (native/sparse.cc): the masked fully connected layer
// at the mask's nonzeros.
#pragma once

#include <node_api.h>
#include <cstdint>

namespace lth {

// Defined in lth_native.cc: the pool's thread count, and running fn(ctx, part) for
// part = 0..parts-1 on the calling thread and the pool.
int thread_count();
void run_parts(int parts, void (*fn)(void* ctx, int part), void* ctx);

// Adds the sparse kernels (sparsePattern, sparseForward, sparseInputGrad, sparseWeightGrad,
// toPanels, fromPanels) to `exports`.
// `simd` is the path lth_native chose ('avx512' | 'avx2' | 'scalar').
bool register_sparse(napi_env env, napi_value exports, const char* simd);

}  // namespace lth
