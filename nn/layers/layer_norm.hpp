// LayerNorm over the trailing dims (torch.nn.LayerNorm).
//   x [..., *normalized_shape] -> same shape;  weight, bias [*normalized_shape] (ones, zeros).
#pragma once
#include "nn/module.hpp"

namespace quench::nn {

class LayerNorm : public Module {
 public:
  LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  LayerNorm(int64_t dim, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNorm(Shape{dim}, eps, elementwise_affine) {}
  std::string extra_repr() const override;
  bool row_independent() const override { return true; }

  Shape normalized_shape;
  double eps;
  Tensor weight, bias;

 protected:
  Tensor forward(const Tensor& x) override;
};

}  // namespace quench::nn
