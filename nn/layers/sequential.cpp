#include "nn/layers/sequential.hpp"

namespace quench::nn {

Sequential::Sequential(std::vector<ModulePtr> modules) : Sequential() {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(ModulePtr m) { register_module(std::to_string(size()), std::move(m)); }

bool Sequential::row_independent() const {
  return children_row_independent();
}

ModulePtr Sequential::operator[](size_t i) const {
  QUENCH_CHECK(i < size(), "Sequential: index ", i, " out of range for ", size(), " modules");
  return named_children()[i].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [n, m] : named_children()) h = (*m)(h);
  return h;
}

Tensor Sequential::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(!inputs.empty(), "Sequential: expected at least 1 input");
  if (inputs.size() == 1) return forward(inputs[0]);
  tensor_list args = inputs;
  for (const auto& [n, m] : named_children()) args[0] = (*m)(args);
  return args[0];
}

}  // namespace quench::nn
