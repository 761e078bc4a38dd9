// QATBertSelfAttention: nn::BertSelfAttention whose two matmuls see fake-quantized inputs, as
// QATAttention does for nn::Attention (per tensor, the activation spec, softmax in FP32).
//   {h [B, N, H]} or {h, key_padding_mask u8 [B, N]} -> context [B, N, H]
// Children: query, key, value (swapped separately by prepare_qat), dropout (HF's, on the
// probabilities; it runs after the probs quantizer, whose observer then sees what inference sees) and q_fake_quant, k_fake_quant,
// probs_fake_quant, v_fake_quant. Hooks see "probs" before dropout, as on nn::BertSelfAttention.
#pragma once
#include "nn/layers/bert.hpp"
#include "quant/qconfig.hpp"

namespace quench::quant {

class QATBertSelfAttention : public nn::Module {
 public:
  // Takes over `fp32`'s query / key / value / dropout children (shared) and its sizes.
  QATBertSelfAttention(nn::BertSelfAttention& fp32, const QConfig& qconfig);
  std::string extra_repr() const override;

  int64_t heads, head_dim;
  double scale;

 protected:
  Tensor forward(const Tensor& h) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

}  // namespace quench::quant
