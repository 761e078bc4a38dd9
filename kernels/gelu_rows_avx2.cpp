// gelu_rows, AVX2 path: the _ref loops compiled with the AVX2 and FMA flags, 8 floats a step. The
// element functions are branch-free with explicit FMAs and nothing contracts, so the vectorized
// loops give the _ref bits.
#include "kernels/gelu_rows.hpp"
#include "kernels/vmath.hpp"

namespace quench::kernels {

void gelu_rows_avx2(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = vgelu(x[i]);
}
void gelu_backward_rows_avx2(const float* g, const float* x, int64_t n, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = vgelu_backward(g[i], x[i]);
}

}  // namespace quench::kernels
