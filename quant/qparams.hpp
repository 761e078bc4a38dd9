// Quantization parameters and the one rounding rule every quantized path shares.
//
// q = clamp(round_half_even(x * inv_scale) + zero_point, qmin, qmax) with inv_scale = 1.0f / scale
// computed in float, exactly as PyTorch's fake-quantize and quantize_per_tensor CPU kernels do; the
// dequantized value is (q - zero_point) * scale. The fake-quant op, the converted int8 model and the
// kernels' row quantizer all use this definition, so QAT sees exactly the grid the int8 model computes on.
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/tensor.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

// scale: float32, zero_point: int32; shape [] per tensor, [C] per channel.
struct QParams {
  Tensor scale;
  Tensor zero_point;
};

// The rounding rule. NaN maps to qmin, +-inf saturates.
inline int32_t quantize_value(float x, float inv_scale, int32_t zero_point, int32_t qmin, int32_t qmax) {
  float r = std::nearbyint(x * inv_scale);  // default rounding mode: ties to even
  const float lo = static_cast<float>(qmin - zero_point), hi = static_cast<float>(qmax - zero_point);
  if (!(r >= lo)) r = lo;
  if (r > hi) r = hi;
  return static_cast<int32_t>(r) + zero_point;
}

inline float dequantize_value(int32_t q, float scale, int32_t zero_point) {
  return static_cast<float>(q - zero_point) * scale;
}

}  // namespace quench::quant
