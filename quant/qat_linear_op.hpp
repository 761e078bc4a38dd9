// The fake-quantized Linear as one differentiable op, computed on the int8 model's own grid.
//
//   y = fq(x) @ fq(W)^T + b     x [..., K] f32, weight [N, K] f32, bias [N] or undefined -> y [..., N]
//
// Forward is the converted Int8Linear's computation: the integer codes q_x and q_w (shared rounding
// rule, quant/qparams.hpp) go through the int8 GEMM (kernels/gemm_u8s8.hpp), whose accumulator is
// exact, and its f32 epilogue
//   mult[n] = s_x * s_w[n] (float); y = float(acc) * mult[n]; y = y + b[n]   (no FMA)
// so the QAT forward and the converted int8 model give bit-identical outputs. What that GEMM does not
// take (codes outside u8 / s8, weights with a zero point, K > 65536, scales that are not positive and
// finite) uses the fp32 GEMM of (q_x - z_x) and (q_w - z_w), small integers held exactly in float:
// the same accumulator whenever every partial sum stays below 2^24 (K <= 258 for 8-bit codes whose
// offsets reach 255 on both sides), then the same epilogue.
//
// Backward is the straight-through estimator of fake_quantize composed with linear:
//   dx = (dy @ W_hat) * mask_x,  dW = (dy^T @ x_hat) * mask_w,  db = sum_rows dy
// with x_hat = (q_x - z_x) * s_x, W_hat = (q_w - z_w) * s_w[n] and the masks of fake_quantize (the
// unclamped q inside [qmin, qmax]). Scales and zero points get no gradient (LSQ uses the composed
// fake_quantize_learnable + linear path instead).
#pragma once
#include "engine/tensor.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

// x_scale f32 [1] / x_zero_point i32 [1] with a per-tensor x_spec; w_scale / w_zero_point [N] with a
// per-channel (axis 0) w_spec, or [1] per tensor.
Tensor qat_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& x_scale,
                  const Tensor& x_zero_point, const QuantSpec& x_spec, const Tensor& w_scale,
                  const Tensor& w_zero_point, const QuantSpec& w_spec);

}  // namespace quench::quant
