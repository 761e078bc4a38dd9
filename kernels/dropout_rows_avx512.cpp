// dropout_rows, AVX512 path: the _ref loops compiled with the AVX512 flags (integer math and one float
// multiply, so the vectorized loops give the _ref bits).
#include "kernels/dropout_rows.hpp"

namespace quench::kernels {

void dropout_rows_avx512(const float* x, int64_t n, uint64_t key, uint64_t first, uint32_t keep_below, float scale,
                     uint8_t* mask, float* y) {
  dropout_rows_loop(x, n, key, first, keep_below, scale, mask, y);
}
void dropout_backward_rows_avx512(const float* g, const uint8_t* mask, int64_t n, float scale, float* dx) {
  dropout_backward_rows_loop(g, mask, n, scale, dx);
}

}  // namespace quench::kernels
