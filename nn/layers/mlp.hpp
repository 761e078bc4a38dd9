// Transformer MLP: fc2(act(fc1(x))) (timm Mlp without dropout).
//   x [..., dim] -> [..., out];  fc1: Linear(dim, hidden), act: GELU (exact), fc2: Linear(hidden, out).
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class Mlp : public Module {
 public:
  // out = 0 means out = dim.
  Mlp(int64_t dim, int64_t hidden, int64_t out, Generator& gen);
  Mlp(int64_t dim, int64_t hidden, int64_t out = 0);
  bool row_independent() const override;

 protected:
  Tensor forward(const Tensor& x) override;
};

}  // namespace quench::nn
