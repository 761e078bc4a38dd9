// Int4Linear: the converted, inference-only low-bit Linear running on the u8 x s4 GEMM
// (kernels/gemm_u8s4.hpp), beside Int8Linear.
//   x f32 [..., in] -> y f32 [..., out]
//   q_x   = quantize(x, s_x, z_x)       per tensor (frozen input_scale / input_zero_point) or per token
//                                       (each row's own qparams, quant/observer.hpp's row_qparams)
//   acc_g = sum_{k in group g} (q_x - z_x) * W_q[n, k]                (exact s32, u8 x s4)
//   y     = sum_g float(acc_g) * (s_x * weight_scale[n, g]) + bias[n]  (the GEMM's f32 epilogue)
// With one group (per-channel scales) and per-tensor activations this is bit for bit what the frozen
// QATLinear computes (its int8 GEMM takes the same codes and has the same epilogue); per group or per
// token, QATLinear composes fake_quantize and an fp32 linear, which this matches to float rounding.
//
// State (buffers; all in the state dict and quantized checkpoints, quant/int8_io.hpp):
//   weight        U8  [out, ceil(in / 2)]  packed signed 4-bit codes, two per byte: byte j of row n
//                                          holds W_q[n, 2j] in its low nibble and W_q[n, 2j + 1] in
//                                          its high nibble, two's complement; the padding nibble of
//                                          an odd `in` is 0
//   weight_scale  F32 [out, groups]        groups = ceil(in / group_size), 1 per channel
//   bias          F32 [out]                when present
//   input_scale   F32 [1], input_zero_point I32 [1]   per-tensor activations only
// Codes lie in [-qmax, qmax] with qmax = 2^(bits-1) - 1 (bits 2..4, symmetric, zero point 0).
// Packing for the GEMM: on first use, again whenever the active ISA or the weight bytes change (as
// Int8Linear). With per-tensor activations it runs the fused passes as Int8Linear does
// (quant/quantized_linear.hpp).
#pragma once
#include <mutex>
#include <string>
#include <vector>

#include "kernels/gemm_u8s4.hpp"
#include "quant/quantized_linear.hpp"

namespace quench::quant {

class Int4Linear : public QuantizedLinear {
 public:
  // Zero-filled state of the given shape (filled by convert or load_state_dict). group_size: 0 (per
  // channel) or a multiple of 8; bits in [2, 4].
  Int4Linear(int64_t in_features, int64_t out_features, bool bias, int64_t group_size = 0, bool per_token = false,
             int bits = 4);
  std::string extra_repr() const override;

  int64_t group_size, groups;
  bool per_token;
  int bits;

  // Packs codes W_q [out, in] (int8 values in [-qmax, qmax]) into `weight`, two per byte.
  void set_weight_codes(const int8_t* codes);
  // The codes read back from `weight`, [out, in].
  std::vector<int8_t> weight_codes() const;
  // Checks the state (codes in range, padding nibbles 0, scales positive and finite, the zero point
  // in [0, 255]); throws naming `where` and the bad entry.
  void validate(const std::string& where = "Int4Linear") const;
  const kernels::PackedWeightsU8S4& packed();
  void prepare() override { packed(); }
  // Per-tensor activations only (frozen_input_grid()).
  void gemm_f32(const uint8_t* q, int64_t M, float* y, int64_t ldy, const float* residual = nullptr) const override;

 protected:
  void forward_rows(const float* x, int64_t M, float* y, const float* residual) override;

 private:
  std::mutex pack_mu_;
  kernels::PackedWeightsU8S4 packed_;
  std::vector<uint8_t> packed_from_;
};

}  // namespace quench::quant
