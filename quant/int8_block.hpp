// Int8Block: the converted pre-norm transformer block (nn::Block with QuantizedLinear qkv / proj and an
// Int8Mlp) run image block by image block, so every intermediate of the block (normalized rows, qkv,
// attention output, the MLP's hidden layer) stays in L2 instead of going to memory:
//   x f32 [B, N, D] -> y f32 [B, N, D]; per group of images (rows = images * N):
//     h   = layer_norm(x, norm1), quantized for qkv       (the engine op's row loop, 8 rows at a time)
//     qkv = attn.qkv(h)                                   (QuantizedLinear halves)
//     a   = attention(qkv)                                (the engine op nn::Attention runs)
//     x1  = x + attn.proj(a)
//     y   = x1 + mlp(layer_norm(x1, norm2))               (Int8Mlp::rows_quantized)
// Every op is the one nn::Block's children run, on whole images (attention never mixes images), so
// the result is bit-identical to nn::Block for any grouping and thread count
// (tests/test_int8_fused.cpp).
//
// Children are the block's own (shared): the state dict and dotted names are unchanged. forward falls
// back to nn::Block's composition whenever the fast path does not apply: a key-padding mask, a child
// of another type (QATAttention, a non-fused MLP), a forward hook anywhere below (hooks and emitted
// extras such as attn's "probs" must see their calls), or gradient recording on the input.
#pragma once
#include <string>
#include <vector>

#include "nn/layers/block.hpp"
#include "nn/module.hpp"

namespace quench::quant {

class Int8Block : public nn::Module, public nn::PrefixForward {
 public:
  // Takes over block's norm1 / attn / norm2 / mlp children (shared).
  explicit Int8Block(nn::Module& block);
  // True when forward will take the fused path for a plain float input.
  bool fused();
  // The first `tokens` rows of each image (nn::PrefixForward), fused as forward when it can be,
  // else nn::block_forward_prefix.
  Tensor forward_prefix(const tensor_list& inputs, int64_t tokens) override;

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;  // {x} or {x, mask}, as nn::Block

 private:
  Tensor composed(const tensor_list& inputs);  // nn::Block::forward_multi
  // The fused pass for the first `tokens` rows of each image (-1: all); undefined when it does not apply.
  Tensor fused_rows(const tensor_list& inputs, int64_t tokens);
};

// Replaces every nn::Block of `model` whose attn is an nn::Attention with QuantizedLinear qkv / proj and
// whose mlp is a fused Int8Mlp (run fuse_int8_mlps first) by an Int8Block. Returns their names.
std::vector<std::string> fuse_int8_blocks(nn::Module& model);

}  // namespace quench::quant
