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
// Per channel (spec.per_channel): scale [C], zero_point [C] with C = x.size(spec.axis).
Tensor fake_quantize(const Tensor& x, const Tensor& scale, const Tensor& zero_point, const QuantSpec& spec);

// As fake_quantize with a learnable float32 scale (a parameter); zero_point stays fixed.
Tensor fake_quantize_learnable(const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                               const QuantSpec& spec, double grad_factor);

// LSQ's initial scale for x: 2 * mean|x| / sqrt(qmax) (per channel along spec.axis when per_channel).
Tensor lsq_init_scale(const Tensor& x, const QuantSpec& spec);

}  // namespace quench::quant
