// QATAttention: nn::Attention whose two matmuls see fake-quantized inputs (q @ k^T and probs @ v),
// per tensor with the activation spec of its QConfig; softmax stays FP32.
//   x [B, N, D] (+ optional key-padding mask [B, N]) -> [B, N, D], exactly nn::Attention otherwise.
// Children: qkv, proj (whatever they are: Linear, QATLinear or Int8Linear; prepare_qat swaps them
// separately) and q_fake_quant, k_fake_quant, probs_fake_quant, v_fake_quant (FakeQuantize).
// After convert the module stays (observers frozen): its matmuls run in fp32 on the dequantized
// int8 grid, i.e. the same values an integer matmul would produce up to fp32 summation rounding
// (there is no batched int8 matmul kernel). Exposes "probs" to hooks like nn::Attention.
#pragma once
#include <memory>

#include "nn/layers/attention.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/qconfig.hpp"

namespace quench::quant {

class QATAttention : public nn::Module {
 public:
  // Takes over `fp32`'s qkv / proj children (shared) and its sizes.
  QATAttention(nn::Attention& fp32, const QConfig& qconfig);
  std::string extra_repr() const override;

  int64_t dim, heads, head_dim;
  double scale;

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

}  // namespace quench::quant
