// The row passes the fused QAT ops (qat_linear_op, qat_matmul_op) share: fake quantization of many
// rows at once, and the STE mask on a gradient, split over threads by rows.
#pragma once
#include <cstdint>

#include "engine/tensor.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

// Rows of src [R, K]: qi = float(q - z) (exact small integers), deq = qi * s (fake_quantize's value),
// mask = unclamped q inside [qmin, qmax], code = q as a byte (kernels/fake_quant_rows.hpp); any output
// may be null. Row r uses scale[r % nscale] (1 scale per tensor, R per row).
void quantize_rows(const float* src, int64_t R, int64_t K, const float* scale, const int32_t* zp, int64_t nscale,
                   const QuantSpec& spec, float* qi, float* deq, uint8_t* mask, uint8_t* code);

// g = mask ? g : 0 elementwise (g f32 and mask u8 contiguous, same numel).
void apply_mask(Tensor& g, const Tensor& mask);

template <class T>
T* or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

}  // namespace quench::quant
