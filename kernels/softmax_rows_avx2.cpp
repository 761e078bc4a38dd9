// attn_softmax_rows, AVX2 path: the plain loops (softmax_rows_scalar.hpp) compiled with AVX2 flags and
// -ffp-contract=off, so they vectorize 8 wide with the reference's roundings.
#include "kernels/softmax_rows_scalar.hpp"

namespace quench::kernels {

void attn_softmax_rows_avx2(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y) {
  srows::softmax_rows(x, rows, n, scale, mask, y);
}
void attn_softmax_rows_backward_avx2(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                     float* dx) {
  srows::softmax_rows_backward(y, g, rows, n, scale, dx);
}

}  // namespace quench::kernels
