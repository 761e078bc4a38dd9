// QATAttention: nn::Attention whose two matmuls see fake-quantized inputs (q @ k^T and probs @ v),
// per tensor with the activation spec of its QConfig; softmax stays FP32.
//   x [B, N, D] (+ optional key-padding mask [B, N]) -> [B, N, D], exactly nn::Attention otherwise.
// Children: qkv, proj (whatever they are: Linear, QATLinear, Int8Linear or Int4Linear; prepare_qat
// swaps them separately) and q_fake_quant, k_fake_quant, probs_fake_quant, v_fake_quant (FakeQuantize).
// Both products run on the integer codes (quant/qat_matmul_op.hpp: exact int32 sums through the int8
// GEMM, one scale), the scores' scale and key mask in attention_softmax; in training as in eval, so
// after convert (the module stays, observers frozen) the int8 model computes the same bits as the
// QAT model. LSQ scales, disabled fake quantization, hooks on a quantizer or a training dropout on
// the probabilities take the composed fake_quantize + fp32 matmul path. Exposes "probs" to hooks
// like nn::Attention.
// QATBertSelfAttention (qat_bert_attention.hpp) is the same for nn::BertSelfAttention.
#pragma once
#include <memory>
#include <vector>

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

// Registers q_fake_quant, k_fake_quant, probs_fake_quant, v_fake_quant on `m`.
void add_attention_fake_quants(nn::Module& m, const QConfig& qconfig);
// The two fake-quantized matmuls, shared by both attention modules; `m` owns the children
// q_fake_quant, k_fake_quant, probs_fake_quant, v_fake_quant, `op` names it in errors.
//   q, k [B, H, N, hd], key_padding_mask (undefined or u8 [B, N], 1 = padding) -> probs [B, H, N, N]
Tensor qat_attention_probs(nn::Module& m, const Tensor& q, const Tensor& k, double scale,
                           const Tensor& key_padding_mask, const char* op);
//   probs [B, H, N, N], v [B, H, N, hd] -> [B, H, N, hd]; `dropout` (optional) runs on the quantized
//   probabilities, so the observer sees what inference sees.
Tensor qat_attention_apply(nn::Module& m, const Tensor& probs, const Tensor& v, nn::Module* dropout = nullptr);

// The fused inference path of both modules (int8_attention.hpp), same bits as the two functions
// above: q, k, v [B, H, N, hd] -> context [B, N, H * hd]; undefined when it does not apply (a
// gradient to record, hooks on `m` that want the probabilities, a dropout in training, quantizers
// still observing or off the u8 grid).
Tensor qat_attention_fused(nn::Module& m, const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                           const Tensor& key_padding_mask, nn::Module* dropout, const char* op);

// The same from the attention's input when its projections are QuantizedLinear with frozen input
// grids (a converted model, Int8Linear or per-tensor Int4Linear; the
// children named by `projections`, outputs side by side = [q | k | v]): x [B, N, in] -> context
// [B, N, heads * head_dim] through int8_attention_projected, or undefined when the path does not
// apply (a projection of another type, per-token or with a hook, and the conditions above).
Tensor qat_attention_fused_projected(nn::Module& m, const Tensor& x, const std::vector<const char*>& projections,
                                     int64_t heads, int64_t head_dim, double scale, const Tensor& key_padding_mask,
                                     nn::Module* dropout, const char* op);

// The attention modules prepare_qat knows (nn::Attention, nn::BertSelfAttention): their fake-quant
// counterpart, or null for any other module; is_qat_attention tells the counterparts apart.
nn::ModulePtr make_qat_attention(nn::Module& fp32, const QConfig& qconfig);
bool is_qat_attention(const nn::Module& m);

}  // namespace quench::quant
