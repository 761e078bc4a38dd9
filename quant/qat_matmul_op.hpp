// The fake-quantized matmul of attention (q @ k^T, probs @ v) as one differentiable op, computed on
// the integer codes as an int8 model computes it.
//
//   y = fq(a) @ fq(b)^T     a [..., M, K], b [..., N, K] f32 (the same leading dims) -> y [..., M, N]
//   (qat_matmul: fq(a) @ fq(b), b [..., K, N])
//
// Both operands per tensor, u8 codes (qa, za, sa) and (qb, zb, sb). Forward, per matrix of the batch:
//   acc[m, n] = sum_k (qa[m,k] - za) * (qb[n,k] - zb)                       (exact int32)
//   y[m, n]   = float(acc[m, n]) * (sa * sb)                                 (one float product)
// The int8 GEMM (kernels/gemm_u8s8.hpp) takes qa with its zero point against the s8 operand qb - 128;
// the row term (128 - zb) * sum_k (qa[m,k] - za) completes the sum. The value is the one an fp32
// matmul of the fake-quantized operands approaches (it adds the same products, rounded), but exact
// and the same on every ISA path and thread count, so a QAT model and its converted int8 model
// give the same bits.
//
// Backward is the straight-through estimator of fake_quantize composed with the matmul:
//   da = (dy @ b_hat) * mask_a,  db = (dy^T @ a_hat) * mask_b
// with a_hat, b_hat the fake-quantized values and the masks of fake_quantize. Scales and zero points
// get no gradient (LSQ takes the composed fake_quantize_learnable + matmul path instead).
#pragma once
#include "engine/tensor.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

// The longest sum: K products of two u8 offsets (up to 255 * 255 each) stay inside int32.
inline constexpr int64_t kQatMatmulMaxK = 32768;

// Whether an operand quantized by (spec, scale [1], zero_point [1]) fits qat_matmul_nt: per tensor,
// codes in [0, 255], a positive finite scale. K is at most kQatMatmulMaxK.
bool qat_matmul_fits(const QuantSpec& spec, const Tensor& scale, const Tensor& zero_point);

Tensor qat_matmul_nt(const Tensor& a, const Tensor& a_scale, const Tensor& a_zero_point, const QuantSpec& a_spec,
                     const Tensor& b, const Tensor& b_scale, const Tensor& b_zero_point, const QuantSpec& b_spec);
// y = fq(a) @ fq(b) with b [..., K, N] (probs @ v): the same sums, b packed from its [K, N] rows.
Tensor qat_matmul(const Tensor& a, const Tensor& a_scale, const Tensor& a_zero_point, const QuantSpec& a_spec,
                  const Tensor& b, const Tensor& b_scale, const Tensor& b_zero_point, const QuantSpec& b_spec);

}  // namespace quench::quant
