// Pre-norm transformer block: x + attn(norm1(x)), then + mlp(norm2(x)).
//   x [B, N, D] (+ optional key-padding mask [B, N]) -> [B, N, D]
//   children: norm1 LayerNorm(D, eps), attn Attention(D, heads), norm2 LayerNorm(D, eps), mlp Mlp(D, hidden)
//
// forward_prefix computes only the first T token rows of the output, exactly those rows of forward:
// every token still passes norm1 and qkv (all keys and values are needed), but attention asks only
// T queries, and proj, norm2 and the MLP see T rows. A ViT's last block needs only its CLS row
// (T = 1), which saves 1/8 of the reference ViT's GEMM work in forward and backward.
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

// A transformer block that can compute the first `tokens` rows of its output on its own.
class PrefixForward {
 public:
  virtual ~PrefixForward() = default;
  // inputs as forward_multi ({x} or {x, mask}) -> [B, tokens, D]; undefined when the shortcut does
  // not apply (a forward hook on the block or below, whose calls must happen as written; a child that
  // is not row_independent, e.g. a fake quantization still observing; an unexpected child type or
  // input), and the caller then runs the full forward.
  virtual Tensor forward_prefix(const tensor_list& inputs, int64_t tokens) = 0;
};

// nn::Block's forward_prefix on any module with nn::Block's children (norm1, attn an nn::Attention,
// norm2, mlp), called through the child registry.
Tensor block_forward_prefix(Module& block, const tensor_list& inputs, int64_t tokens);

class Block : public Module, public PrefixForward {
 public:
  Block(int64_t dim, int64_t heads, int64_t hidden, double eps, Generator& gen);
  Block(int64_t dim, int64_t heads, int64_t hidden, double eps = 1e-6);
  Tensor forward_prefix(const tensor_list& inputs, int64_t tokens) override;

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;  // {x} or {x, mask}
};

}  // namespace quench::nn
