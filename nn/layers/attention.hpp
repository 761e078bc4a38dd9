// Multi-head self-attention with a packed qkv projection (timm / vit_reference.py Attention).
//   x [B, N, D] (+ optional key-padding mask [B, N], u8, nonzero = masked key) -> [B, N, D]
//   qkv: Linear(D, 3D), rows ordered q, k, v; head h uses rows h*hd .. (h+1)*hd-1 of each block.
//   proj: Linear(D, D). Scores are scaled by hd^-0.5; masked keys get -inf before the softmax
//   (a row whose keys are all masked gives NaN, as PyTorch).
// Hooks: the attention probabilities [B, heads, N, N] are exposed as extra output "probs".
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class Attention : public Module {
 public:
  Attention(int64_t dim, int64_t heads, bool qkv_bias, Generator& gen);
  Attention(int64_t dim, int64_t heads, bool qkv_bias = true);
  std::string extra_repr() const override;
  // The first `tokens` rows of forward_multi(inputs) (only those queries; all keys): [B, T, D], for
  // block_forward_prefix. Undefined when this module has hooks (they must see the full call).
  Tensor forward_prefix(const tensor_list& inputs, int64_t tokens);

  int64_t dim, heads, head_dim;
  double scale;

 protected:
  Tensor forward(const Tensor& x) override;
  // inputs: {x} or {x, key_padding_mask}
  Tensor forward_multi(const tensor_list& inputs) override;

 private:
  Tensor attend(const tensor_list& inputs, int64_t queries);  // queries -1: all
};

}  // namespace quench::nn
