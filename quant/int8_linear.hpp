// Int8Linear: the converted, inference-only Linear running on the int8 GEMM (kernels/gemm_u8s8.hpp).
//   x f32 [..., in] -> y f32 [..., out]
//   q_x = quantize_row_u8(x, input_scale, input_zero_point)            (the shared rounding rule)
//   acc = sum_k (q_x - z_x) * W_q[n, k]                                 (exact s32, u8 x s8)
//   y   = float(acc) * (input_scale * weight_scale[n]) + bias[n]        (the kernels' f32 epilogue)
// This is bit for bit what QATLinear computes with the same frozen scales (quant/qat_linear_op.hpp).
// A QuantizedLinear (quant/quantized_linear.hpp): the fused passes run its two halves on row blocks.
//
// State (buffers; all in the state dict and int8 checkpoints):
//   weight i8 [out, in] (symmetric, zero point 0), weight_scale f32 [out], bias f32 [out] (when
//   present), input_scale f32 [1], input_zero_point i32 [1]; activations are u8 over
//   [input_qmin, input_qmax] (0..255 by default).
// Packing: the s8 weights are packed for kernels::active_isa() on first use and re-packed whenever the
// active ISA changes (kernels::set_isa) or the weight buffer's bytes change (load_state_dict), so
// every ISA path runs its own layout and a loaded checkpoint is never served stale panels.
#pragma once
#include <mutex>
#include <vector>

#include "kernels/gemm_u8s8.hpp"
#include "quant/quantized_linear.hpp"

namespace quench::quant {

// The int8 GEMM through its f32 epilogue, as every quantized Linear runs it (Int8Linear, and the QAT
// Linear's forward): q [M, K] codes (u8, or s8 when q_signed) with zero point z, packed s8 weights ->
//   y [M, N] (row stride ldy) = float(sum_k (q - z) * W[n, k]) * (x_scale * w_scale[n]) + bias[n]
// (+ residual [M, N], row stride ldy, when given). bias may be null. Errors name `op`.
void int8_gemm_f32(const kernels::PackedWeightsU8S8& pw, const void* q, bool q_signed, int32_t zero_point,
                   float x_scale, const float* w_scale, const float* bias, int64_t M, float* y, int64_t ldy,
                   const float* residual, const char* op);

class Int8Linear : public QuantizedLinear {
 public:
  // Zero-filled state of the given shape (filled by convert or load_state_dict).
  Int8Linear(int64_t in_features, int64_t out_features, bool bias, int32_t input_qmin = 0, int32_t input_qmax = 255);
  std::string extra_repr() const override;

  // Checks the state (scales positive and finite, zero point inside the activation range, ...);
  // throws naming the module and the bad entry. `where` prefixes the message (a dotted name).
  void validate(const std::string& where = "Int8Linear") const;
  // The packed weights for the active ISA (packs when needed; compares the weight bytes, so call it
  // once per forward, not per row block).
  const kernels::PackedWeightsU8S8& packed();
  void prepare() override { packed(); }
  void gemm_f32(const uint8_t* q, int64_t M, float* y, int64_t ldy, const float* residual = nullptr) const override;

 private:
  std::mutex pack_mu_;
  kernels::PackedWeightsU8S8 packed_;
  std::vector<int8_t> packed_from_;  // the bytes packed_ was built from
};

}  // namespace quench::quant
