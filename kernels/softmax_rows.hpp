// Attention's softmax rows (engine/ops/attention.cpp): short rows (N = 50 keys for the reference
// ViT), one (batch, head) block of rows at a time, so the per-row overhead of the general softmax
// (engine/ops/row_math.hpp: 4 double lanes, a separate scale pass) dominated. Here:
//   forward   y = softmax(t),  t[j] = mask[j] ? -inf : x[j] * scale
//   backward  dx = (y * (g - sum(g * y))) * scale
// Sums are taken in float over 16 lanes (element j in lane j % 16, lanes then added as a tree:
// l + 8, l + 4, l + 2, l + 1: at most 4 values per lane for a row of 50, all of one sign in the
// forward) and exp is kernels::exp_approx, so the AVX-512 path (whole rows in zmm, the tail masked),
// the AVX2 path and the plain _ref loops give the same bits (tests/test_softmax_rows.cpp).
// Rows are contiguous, n floats apart. Single-threaded: callers split heads over threads.
#pragma once
#include <cstdint>

namespace quench::kernels {

// x, y [rows, n]; mask: n bytes (nonzero = key left out) or nullptr. y may alias x.
void attn_softmax_rows(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y);
void attn_softmax_rows_ref(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask,
                           float* y);

// y, g, dx [rows, n]; dx may alias g.
void attn_softmax_rows_backward(const float* y, const float* g, int64_t rows, int64_t n, float scale, float* dx);
void attn_softmax_rows_backward_ref(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                    float* dx);

}  // namespace quench::kernels
