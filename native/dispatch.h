// The SIMD path in use for the GEMM and elementwise kernels (lth_native.cc chooses it
// when the addon loads and switches it in setSimd; the sparse kernels have their own
// table, gS in sparse_kernels.h, switched with it).
#pragma once

#include <stddef.h>

#include "kernels.h"

namespace lth {

// The kernel table of the path in use.
extern const Kernels* gK;

// Floats of a thread's GEMM scratch: the most any path this CPU has needs, so that a
// buffer allocated for one path serves after setSimd switches to another.
extern size_t gScratchFloats;

}  // namespace lth
