// Fake quantization: x_hat = (clamp(round_half_even(x / s) + z, qmin, qmax) - z) * s, computed with the
// shared rule of quant/qparams.hpp, so the student sees exactly the int8 model's rounding.
//
// Backward is the straight-through estimator with the clamp mask: dx = dy where
// qmin <= round(x / s) + z <= qmax (the unclamped value), 0 elsewhere. The learnable variant (LSQ)
// also returns the scale's gradient: inside the range dy * (round(x/s) - x/s), below dy * (qmin - z),
// above dy * (qmax - z), summed (per channel) and multiplied by grad_factor
// (LSQ: 1 / sqrt(numel * qmax)).
#pragma once
#include "engine/tensor.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

// x float32 of any shape. Per tensor: scale f32 [] (or [1]), zero_point i32 [] (or [1]).
// Per channel (spec.per_channel): scale [C], zero_point [C] with C = x.size(spec.axis); per group
// (spec.group_size > 0, axis 0): scale / zero_point [C, G] (or C * G elements) with G the groups of
// each channel's elements, group g covering elements [g * group_size, (g + 1) * group_size).
Tensor fake_quantize(const Tensor& x, const Tensor& scale, const Tensor& zero_point, const QuantSpec& spec);

// As fake_quantize with a learnable float32 scale (a parameter); zero_point stays fixed.
Tensor fake_quantize_learnable(const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                               const QuantSpec& spec, double grad_factor);

// Dynamic per-token fake quantization (spec.per_token): every row of x's last dim quantized with the
// qparams of its own min / max (quant/observer.hpp's row_qparams). Backward: the STE with each row's
// clamp mask, the row's scale held constant.
Tensor fake_quantize_per_token(const Tensor& x, const QuantSpec& spec);

// LSQ's initial scale for x: 2 * mean|x| / sqrt(qmax) (per channel along spec.axis when per_channel,
// [C, G] per group).
Tensor lsq_init_scale(const Tensor& x, const QuantSpec& spec);

}  // namespace quench::quant
