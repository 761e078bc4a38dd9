// Int8Linear: the converted, inference-only Linear running on the int8 GEMM (kernels/gemm_u8s8.hpp).
//   x f32 [..., in] -> y f32 [..., out]
//   q_x = quantize_row_u8(x, input_scale, input_zero_point)            (the shared rounding rule)
//   acc = sum_k (q_x - z_x) * W_q[n, k]                                 (exact s32, u8 x s8)
//   y   = float(acc) * (input_scale * weight_scale[n]) + bias[n]        (the kernels' f32 epilogue)
// This is bit for bit what QATLinear computes with the same frozen scales (quant/qat_linear_op.hpp).
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
#include "nn/module.hpp"

namespace quench::quant {

// The int8 GEMM through its f32 epilogue, as every quantized Linear runs it (Int8Linear, and the QAT
// Linear's forward): q [M, K] codes (u8, or s8 when q_signed) with zero point z, packed s8 weights ->
//   y [M, N] (row stride ldy) = float(sum_k (q - z) * W[n, k]) * (x_scale * w_scale[n]) + bias[n]
// (+ residual [M, N], row stride ldy, when given). bias may be null. Errors name `op`.
void int8_gemm_f32(const kernels::PackedWeightsU8S8& pw, const void* q, bool q_signed, int32_t zero_point,
                   float x_scale, const float* w_scale, const float* bias, int64_t M, float* y, int64_t ldy,
                   const float* residual, const char* op);

// Rows per block of the fused int8 passes (Int8Mlp, int8_attention_projected) over M rows: at most
// 128 (a block's fp32 outputs and the weights stay in L2), fewer so that every thread gets a block,
// a multiple of 6 (the micro-kernel's rows). Every row is computed alike whatever the cut.
int64_t fused_row_block(int64_t M);

class Int8Linear : public nn::Module {
 public:
  // Zero-filled state of the given shape (filled by convert or load_state_dict).
  Int8Linear(int64_t in_features, int64_t out_features, bool bias, int32_t input_qmin = 0, int32_t input_qmax = 255);
  std::string extra_repr() const override;
  bool row_independent() const override { return true; }  // the input's scale is frozen

  int64_t in_features, out_features;
  int32_t input_qmin, input_qmax;
  Tensor weight, weight_scale, bias, input_scale, input_zero_point;  // handles to the buffers

  // Checks the state (scales positive and finite, zero point inside the activation range, ...);
  // throws naming the module and the bad entry. `where` prefixes the message (a dotted name).
  void validate(const std::string& where = "Int8Linear") const;
  // The packed weights for the active ISA (packs when needed; compares the weight bytes, so call it
  // once per forward, not per row block).
  const kernels::PackedWeightsU8S8& packed();

  // forward's two halves on raw rows, for fused modules (quant/int8_mlp.hpp) that run them block by
  // block while the data is in cache. Serial; call from inside a parallel_for over row blocks.
  //   x f32 [M, in] (row stride ldx) -> q u8 [M, in]   (input_scale / input_zero_point, the shared rule)
  void quantize_input(const float* x, int64_t M, int64_t ldx, uint8_t* q) const;
  // Whether `other` quantizes its input to the same codes (scale, zero point and range).
  bool same_input_grid(const Int8Linear& other) const;
  //   q u8 [M, in] -> y f32 [M, out] (row stride ldy) = float(acc) * (s_x * s_w[n]) + bias[n], with
  //   residual[m, n] (row stride ldy; may be y) added last when given: a residual connection fused
  void gemm_f32(const kernels::PackedWeightsU8S8& pw, const uint8_t* q, int64_t M, float* y, int64_t ldy,
                const float* residual = nullptr) const;
  // forward(x) + residual with the add in the GEMM's epilogue (residual + y: the bits of the two ops;
  // no hooks run): residual f32 of the output's shape.
  Tensor forward_plus(const Tensor& x, const Tensor& residual);

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  Tensor run(const Tensor& x, const Tensor& residual);
  std::mutex pack_mu_;
  kernels::PackedWeightsU8S8 packed_;
  std::vector<int8_t> packed_from_;  // the bytes packed_ was built from
};

}  // namespace quench::quant
