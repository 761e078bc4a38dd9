#include "nn/layers/block.hpp"

#include "nn/layers/attention.hpp"
#include "nn/layers/layer_norm.hpp"
#include "nn/layers/mlp.hpp"

namespace quench::nn {

Block::Block(int64_t dim, int64_t heads, int64_t hidden, double eps)
    : Block(dim, heads, hidden, eps, default_generator()) {}

Block::Block(int64_t dim, int64_t heads, int64_t hidden, double eps, Generator& gen) : Module("Block") {
  register_module("norm1", std::make_shared<LayerNorm>(dim, eps));
  register_module("attn", std::make_shared<Attention>(dim, heads, true, gen));
  register_module("norm2", std::make_shared<LayerNorm>(dim, eps));
  register_module("mlp", std::make_shared<Mlp>(dim, hidden, 0, gen));
}

Tensor Block::forward(const Tensor& x) { return forward_multi({x}); }

Tensor Block::forward_prefix(const tensor_list& inputs, int64_t tokens) {
  return block_forward_prefix(*this, inputs, tokens);
}

Tensor block_forward_prefix(Module& block, const tensor_list& inputs, int64_t tokens) {
  auto* attn = dynamic_cast<Attention*>(block.child("attn").get());
  ModulePtr norm1 = block.child("norm1"), norm2 = block.child("norm2"), mlp = block.child("mlp");
  if (!attn || !norm1 || !norm2 || !mlp || block.any_forward_hooks()) return Tensor();
  if (!norm1->row_independent() || !norm2->row_independent() || !mlp->row_independent() ||
      !attn->child("qkv")->row_independent() || !attn->child("proj")->row_independent())
    return Tensor();
  if (inputs.empty() || inputs.size() > 2) return Tensor();
  const Tensor& x = inputs[0];
  if (x.dim() != 3 || tokens < 0 || tokens > x.size(1)) return Tensor();
  Tensor h = (*norm1)(x);                                                        // [B, N, D]
  Tensor a = attn->forward_prefix(inputs.size() == 2 ? tensor_list{h, inputs[1]} : tensor_list{h}, tokens);
  if (!a.defined()) return Tensor();
  Tensor xt = x.narrow(1, 0, tokens) + a;                                        // [B, T, D]
  return xt + (*mlp)((*norm2)(xt));
}

Tensor Block::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2, "Block: expected inputs {x} or {x, mask}, got ",
               inputs.size());
  Tensor x = inputs[0];
  Tensor h = (*child("norm1"))(x);
  x = x + (*child("attn"))(inputs.size() == 2 ? tensor_list{h, inputs[1]} : tensor_list{h});
  return x + (*child("mlp"))((*child("norm2"))(x));
}

}  // namespace quench::nn
