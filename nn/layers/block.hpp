// Pre-norm transformer block: x + attn(norm1(x)), then + mlp(norm2(x)).
//   x [B, N, D] (+ optional key-padding mask [B, N]) -> [B, N, D]
//   children: norm1 LayerNorm(D, eps), attn Attention(D, heads), norm2 LayerNorm(D, eps), mlp Mlp(D, hidden)
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class Block : public Module {
 public:
  Block(int64_t dim, int64_t heads, int64_t hidden, double eps, Generator& gen);
  Block(int64_t dim, int64_t heads, int64_t hidden, double eps = 1e-6);

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;  // {x} or {x, mask}
};

}  // namespace quench::nn
