// Int8BertLayer: the converted BERT layer (nn::BertLayer) whose attention output (dense + residual in
// one GEMM epilogue, then LayerNorm) and feed-forward half run fused; the feed-forward half is one
// pass: intermediate.dense, GELU and output.dense (QuantizedLinear / exact GELU) through Int8Mlp's row
// blocks with the residual added in output.dense's epilogue, so the [B, N, intermediate] activations
// are never written to memory:
//   {h [B, N, H](, key_padding_mask)} -> a = attention(h) -> output.LayerNorm(a + output.dense(gelu(intermediate.dense(a))))
// The same arithmetic as the children composed (Int8Mlp is bit-identical to its parts, and the residual
// is added last in both), so the result equals nn::BertLayer's bit for bit (tests/test_bert_qat.cpp).
// Children are the layer's own (shared): names and the state dict are unchanged. forward composes the
// children instead whenever the fast path does not apply (another child type, a hook on the feed-
// forward modules, dropout in training, an input that records gradients).
#pragma once
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace quench::quant {

class Int8BertLayer : public nn::Module {
 public:
  // Takes over layer's attention / intermediate / output children (shared).
  explicit Int8BertLayer(nn::Module& layer);
  bool fused() const;

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

// Replaces every nn::BertLayer of `model` whose feed-forward Linears are QuantizedLinear by an
// Int8BertLayer (quant::convert and quant::load_int8 call it). Returns their dotted names.
std::vector<std::string> fuse_int8_bert_layers(nn::Module& model);

}  // namespace quench::quant
