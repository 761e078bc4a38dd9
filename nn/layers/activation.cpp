#include "nn/layers/activation.hpp"

#include <sstream>

#include "engine/ops.hpp"

namespace quench::nn {

GELU::GELU(std::string approx) : Module("GELU"), approximate(std::move(approx)) {
  QUENCH_CHECK(approximate == "none" || approximate == "tanh",
               "GELU: approximate must be 'none' or 'tanh', got '", approximate, "'");
}

Tensor GELU::forward(const Tensor& x) { return gelu(x, approximate); }

Dropout::Dropout(double p_, Generator* gen) : Module("Dropout"), p(p_), gen_(gen) {
  QUENCH_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
}

std::string Dropout::extra_repr() const {
  std::ostringstream os;
  os << "p=" << p;
  return os.str();
}

Tensor Dropout::forward(const Tensor& x) {
  return gen_ ? dropout(x, p, is_training(), *gen_) : dropout(x, p, is_training());
}

}  // namespace quench::nn
