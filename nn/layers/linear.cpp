#include "nn/layers/linear.hpp"

#include <cmath>

#include "engine/ops.hpp"
#include "nn/init.hpp"

namespace quench::nn {

Linear::Linear(int64_t in, int64_t out, bool has_bias) : Linear(in, out, has_bias, default_generator()) {}

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen)
    : Module("Linear"), in_features(in), out_features(out) {
  QUENCH_CHECK(in > 0 && out > 0, "Linear: in_features and out_features must be positive, got ", in,
               " and ", out);
  weight = register_parameter("weight", empty({out, in}));
  if (has_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    init::uniform_(bias, -bound, bound, gen);
  }
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
         ", bias=" + (bias.defined() ? "True" : "False");
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

}  // namespace quench::nn
