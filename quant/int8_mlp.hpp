// Int8Mlp: the converted transformer MLP, fc2(GELU(fc1(x))) with fc1 / fc2 QuantizedLinear (Int8Linear,
// or Int4Linear with per-tensor activations; the two may differ), run as one fused pass over blocks of
// rows so that no fp32 [M, hidden] tensor is ever written or re-read:
//   x f32 [..., dim] -> y f32 [..., out]
//   per block of rows: q_x = fc1.quantize_input(x)          u8 [rows, dim]
//                      h   = fc1.gemm_f32(q_x)              f32 [rows, hidden], in L2
//                      q_h = fc2.quantize_input(gelu(h))    u8 [rows, hidden] (GELU a row at a time, in L1)
//                      y   = fc2.gemm_f32(q_h)
// Each step is the same arithmetic as the unfused modules (fc1, nn::GELU's exact erf GELU through
// kernels::gelu_rows, fc2), row by row, so the result is bit-identical to
// fc2(act(fc1(x))) for any block size and thread count (tests/test_int8_fused.cpp).
//
// Children fc1, act, fc2 are the nn::Mlp's own (shared), so the state dict, int8 checkpoints and
// get_submodule("...mlp.fc1") are unchanged. Whenever the fast path does not apply (a child was
// swapped for another type, a tanh GELU, a forward hook on a child) forward runs the children one
// after the other, exactly as nn::Mlp.
#pragma once
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace quench::quant {

class QuantizedLinear;

class Int8Mlp : public nn::Module {
 public:
  // Takes over mlp's fc1 / act / fc2 children (shared).
  explicit Int8Mlp(nn::Module& mlp);
  // True when forward will take the fused path for a float input (children types, exact GELU, no
  // hooks on the children).
  bool fused() const;
  bool row_independent() const override;

  // The fused pass for callers that cut the rows themselves (Int8Block): plan() once per forward
  // (prepares the weights; requires fused()), then rows() on any block of rows, serially
  // from inside a parallel_for.  x f32 [m, in] -> y f32 [m, out] (both contiguous rows); with a
  // residual r [m, out] (contiguous, may be y itself) y = r + mlp(x), added in fc2's epilogue.
  // rows_quantized() takes x already through fc1.quantize_input (u8 [m, in]).
  struct Plan {
    QuantizedLinear *fc1, *fc2;
  };
  Plan plan();
  static void rows(const Plan& p, const float* x, int64_t m, float* y, const float* residual = nullptr);
  static void rows_quantized(const Plan& p, const uint8_t* qx, int64_t m, float* y, const float* residual = nullptr);
  // The fused pass over a whole tensor (requires fused()): x f32 [..., in] -> residual + mlp(x)
  // [..., out] (residual optional, of the output's shape), rows cut over the threads.
  Tensor fused_forward(const Tensor& x, const Tensor& residual);

 protected:
  Tensor forward(const Tensor& x) override;
};

// Replaces every nn::Mlp of `model` whose fc1 and fc2 are QuantizedLinear with frozen input grids
// and whose act is an exact GELU
// by an Int8Mlp (quant::convert and quant::load_int8 call it). Returns their dotted names.
std::vector<std::string> fuse_int8_mlps(nn::Module& model);

}  // namespace quench::quant
