// QuantizedLinear: what every converted Linear offers, whatever its weight bits: Int8Linear (5..8-bit
// codes on the u8 x s8 GEMM) and Int4Linear (2..4-bit codes, two per byte, on the u8 x s4 GEMM).
//   x f32 [..., in] -> y f32 [..., out]
//   forward(x)            = gemm_f32(quantize_input(x))        row by row
//   forward_plus(x, r)    = r + forward(x), the add in the GEMM's epilogue (the bits of the two ops)
// The two halves also run on raw rows, so the fused passes (Int8Mlp, Int8Block, Int8BertLayer,
// int8_attention_projected) keep a block of rows in cache between them; they need an input grid
// frozen at conversion (per tensor), which every Int8Linear has and a per-token Int4Linear has not.
#pragma once
#include <cstdint>

#include "nn/module.hpp"

namespace quench::quant {

// Rows per block of the fused passes (Int8Mlp, int8_attention_projected) over M rows: at most 128
// (a block's fp32 outputs and the weights stay in L2), fewer so that every thread gets a block, a
// multiple of 6 (the micro-kernels' rows). Every row is computed alike whatever the cut.
int64_t fused_row_block(int64_t M);

class QuantizedLinear : public nn::Module {
 public:
  int64_t in_features, out_features;
  int32_t input_qmin, input_qmax;  // the u8 activation range
  // Handles to the derived class's buffers; input_scale / input_zero_point undefined without a
  // frozen input grid.
  Tensor weight, weight_scale, bias, input_scale, input_zero_point;

  // Each output row depends on its input row only (the grid is frozen, or the row's own per token).
  bool row_independent() const override { return true; }
  // Whether one (scale, zero point) quantizes every input row: the fused passes need it.
  bool frozen_input_grid() const { return input_scale.defined(); }

  // forward(x) + residual with the add in the GEMM's epilogue (no hooks run): residual f32 of the
  // output's shape.
  Tensor forward_plus(const Tensor& x, const Tensor& residual);

  // forward's two halves on raw rows, for the fused passes. Serial; call them from inside a
  // parallel_for over row blocks, after prepare() once per forward. Need frozen_input_grid().
  //   x f32 [M, in] (row stride ldx) -> q u8 [M, in]   (input_scale / input_zero_point, the shared rule)
  void quantize_input(const float* x, int64_t M, int64_t ldx, uint8_t* q) const;
  // Whether `other` quantizes its input to the same codes (scale, zero point and range).
  bool same_input_grid(const QuantizedLinear& other) const;
  // Packs the weights for the active ISA when the ISA or the weight bytes changed (it compares the
  // bytes: once per forward, not per row block).
  virtual void prepare() = 0;
  //   q u8 [M, in] -> y f32 [M, out] (row stride ldy) through the GEMM's f32 epilogue, with
  //   residual[m, n] (row stride ldy; may be y) added last when given: a residual connection fused.
  virtual void gemm_f32(const uint8_t* q, int64_t M, float* y, int64_t ldy, const float* residual = nullptr) const = 0;

 protected:
  QuantizedLinear(const char* type, int64_t in, int64_t out, int32_t qmin, int32_t qmax);
  Tensor forward(const Tensor& x) override { return run(x, Tensor()); }
  // forward on raw rows: x f32 [M, in] -> y f32 [M, out] (+ residual [M, out] when not null):
  // quantize_input over the threads, prepare, gemm_f32 over all rows. A per-token Int4Linear
  // overrides it.
  virtual void forward_rows(const float* x, int64_t M, float* y, const float* residual);

 private:
  // The shape and dtype checks, then forward_rows.
  Tensor run(const Tensor& x, const Tensor& residual);
};

}  // namespace quench::quant
