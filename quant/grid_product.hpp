// One matrix of a product on the integer grid, shared by qat_matmul_op (whole batches) and
// int8_attention (one head at a time), so both give the same bits:
//   y[m, n] = float(sum_k (qa[m,k] - za) * (qb[n,k] - zb)) * mult     y [M, N] row stride ldy
// qa u8 [M, K] (row stride K); sb the s8 operand qb - 128, as [N, K] rows or, with b_kn, as [K, N]
// rows. The int8 GEMM (kernels/gemm_u8s8.hpp) adds sum_k (qa - za) * sb exactly; the row term
// (128 - zb) * sum_k (qa[m,k] - za) completes the sum. acc: scratch of M * N int32.
#pragma once
#include <cstdint>

namespace quench::quant {

void grid_product(const uint8_t* qa, int32_t za, const int8_t* sb, bool b_kn, int32_t zb, int64_t M, int64_t N,
                  int64_t K, float mult, int32_t* acc, float* y, int64_t ldy);

}  // namespace quench::quant
