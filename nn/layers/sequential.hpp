// Sequential: children named "0", "1", ... run in order (torch.nn.Sequential). The ViT's "blocks".
#pragma once
#include "nn/module.hpp"

namespace quench::nn {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::vector<ModulePtr> modules);
  // Appends m under the next index.
  void push_back(ModulePtr m);
  size_t size() const { return named_children().size(); }
  // The i-th child (through the registry, so replace_module is seen).
  ModulePtr operator[](size_t i) const;
  bool row_independent() const override;

 protected:
  // Each child's output feeds the next. With several inputs, the extra inputs (e.g. an attention
  // mask) are passed unchanged to every child beside the running activation.
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

}  // namespace quench::nn
