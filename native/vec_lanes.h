// Lane lists for GCC generic vectors whose width is a macro (the sparse kernels' 16, 8 or
// 4 floats): LTH_LANES(W, F) is F(0), F(1), ..., F(W - 1), for vector constants and
// shuffle masks written once for every width. Macros only; no headers.
#ifndef LTH_VEC_LANES_H
#define LTH_VEC_LANES_H

#define LTH_LANES_4(F) F(0), F(1), F(2), F(3)
#define LTH_LANES_8(F) LTH_LANES_4(F), F(4), F(5), F(6), F(7)
#define LTH_LANES_16(F) LTH_LANES_8(F), F(8), F(9), F(10), F(11), F(12), F(13), F(14), F(15)
#define LTH_LANES_EXPAND(W, F) LTH_LANES_##W(F)
#define LTH_LANES(W, F) LTH_LANES_EXPAND(W, F)

#endif
