#include "nn/layers/layer_norm.hpp"

#include <sstream>

#include "engine/ops.hpp"

namespace quench::nn {

LayerNorm::LayerNorm(Shape shape, double eps_, bool affine)
    : Module("LayerNorm"), normalized_shape(std::move(shape)), eps(eps_) {
  QUENCH_CHECK(!normalized_shape.empty() && shape_numel(normalized_shape) > 0,
               "LayerNorm: normalized_shape must be non-empty with positive sizes, got ",
               shape_str(normalized_shape));
  if (affine) {
    weight = register_parameter("weight", ones(normalized_shape));
    bias = register_parameter("bias", zeros(normalized_shape));
  }
}

std::string LayerNorm::extra_repr() const {
  std::ostringstream os;
  os << "(" << shape_str(normalized_shape) << ",), eps=" << eps
     << ", elementwise_affine=" << (weight.defined() ? "True" : "False");
  return os.str();
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, eps); }

}  // namespace quench::nn
