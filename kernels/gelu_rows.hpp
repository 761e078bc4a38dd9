// The exact GELU over contiguous floats, forward and backward, for nn::GELU("none") and the int8 MLP:
//   forward   y[i] = x[i] * Phi(x[i])                      (vgelu, kernels/vmath.hpp)
//   backward  dx[i] = g[i] * (Phi(x[i]) + x[i] * phi(x[i]))  (vgelu_backward)
// Every path gives the element functions' bits (tests/test_gelu_rows.cpp): the _ref twins are plain
// loops over them, the AVX2 path the same loops compiled for AVX2, and the AVX-512 path writes their
// operations out one for one with two instructions the compiler does not find: vrangeps clamps to
// [-c, c] keeping the sign (erf's input and output: one instruction for a min and a max, and no NaN
// select at the end, as GELU's NaN comes through x / 2 anyway) and vscalefps applies exp's 2^n in
// one rounding, as the two normal factors of vexp do. On rows in L1 (a throwaway microbenchmark, 1 and 2 threads)
// that took 4-9% off the forward and 12-18% off the backward against the compiler's AVX-512 loops.
// Single-threaded: callers split the elements over threads.
#pragma once
#include <cstdint>

namespace quench::kernels {

// x, y [n]; y may alias x.
void gelu_rows(const float* x, int64_t n, float* y);
void gelu_rows_ref(const float* x, int64_t n, float* y);

// g, x, dx [n]; dx may alias g or x.
void gelu_backward_rows(const float* g, const float* x, int64_t n, float* dx);
void gelu_backward_rows_ref(const float* g, const float* x, int64_t n, float* dx);

}  // namespace quench::kernels
