#include "quant/grid_product.hpp"

#include "kernels/fake_quant_rows.hpp"
#include "kernels/gemm_u8s8.hpp"

namespace quench::quant {

void grid_product(const uint8_t* qa, int32_t za, const int8_t* sb, bool b_kn, int32_t zb, int64_t M, int64_t N,
                  int64_t K, float mult, int32_t* acc, float* y, int64_t ldy) {
  const kernels::PackedWeightsU8S8 w =
      b_kn ? kernels::pack_weights_u8s8_kn(sb, N, K, N) : kernels::pack_weights_u8s8(sb, N, K, K);
  kernels::GemmU8S8Args g;
  g.M = M;
  g.A = qa;
  g.lda = K;
  g.a_zero_point = za;
  g.W = &w;
  g.out = kernels::U8S8Output::s32;
  g.C = acc;
  g.ldc = N;
  kernels::gemm_u8s8(g);  // sum_k (qa - za)(qb - 128)
  for (int64_t m = 0; m < M; ++m) {
    const int32_t row = kernels::sum_row_u8(qa + m * K, K) - static_cast<int32_t>(K) * za;
    kernels::dequantize_row_s32(acc + m * N, N, (128 - zb) * row, mult, y + m * ldy);
  }
}

}  // namespace quench::quant
