// The binding units' exports: each adds its functions to the module's exports, and the
// module init (lth_native.cc) calls them all. False, with a pending exception, on failure.
#pragma once

#include <node_api.h>

namespace lth {

bool register_gemm(napi_env env, napi_value exports);           // gemm.cc: matmul
bool register_elementwise(napi_env env, napi_value exports);    // elementwise.cc
bool register_conv(napi_env env, napi_value exports);           // conv.cc
bool register_conv2d(napi_env env, napi_value exports);         // conv2d.cc: conv2d, conv2dBackward
bool register_winograd(napi_env env, napi_value exports);       // winograd.cc: conv3x3
bool register_norm(napi_env env, napi_value exports);           // norm.cc: batch norm, residual addition, average pooling
bool register_sparse_pattern(napi_env env, napi_value exports); // sparse_pattern.cc: sparsePattern
bool register_sparse(napi_env env, napi_value exports);         // sparse_bindings.cc
bool register_sparse_mlp(napi_env env, napi_value exports);     // sparse_mlp.cc
bool register_sparse_conv(napi_env env, napi_value exports);    // sparse_conv.cc: sparse stride-1 convolution
bool register_dense_mlp(napi_env env, napi_value exports);      // dense_mlp.cc
bool register_select(napi_env env, napi_value exports);         // select.cc: selectByMagnitude
bool register_seq(napi_env env, napi_value exports);            // seq.cc: LSTM cell, row softmax, layer norm

}  // namespace lth
