#include "nn/layers/mlp.hpp"

#include "nn/layers/activation.hpp"
#include "nn/layers/linear.hpp"

namespace quench::nn {

Mlp::Mlp(int64_t dim, int64_t hidden, int64_t out) : Mlp(dim, hidden, out, default_generator()) {}

Mlp::Mlp(int64_t dim, int64_t hidden, int64_t out, Generator& gen) : Module("Mlp") {
  register_module("fc1", std::make_shared<Linear>(dim, hidden, true, gen));
  register_module("act", std::make_shared<GELU>());
  register_module("fc2", std::make_shared<Linear>(hidden, out > 0 ? out : dim, true, gen));
}

bool Mlp::row_independent() const {
  return children_row_independent();
}

Tensor Mlp::forward(const Tensor& x) {
  // Children are looked up at call time so a swapped fc1 / fc2 (quantization) is used.
  return (*child("fc2"))((*child("act"))((*child("fc1"))(x)));
}

}  // namespace quench::nn
