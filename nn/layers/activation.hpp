// Parameter-free activation and regularization modules.
//   GELU: exact (erf) or tanh approximation, x -> same shape (torch.nn.GELU).
//   Dropout: zeroes with probability p and scales by 1/(1-p) in training; identity in eval.
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none");
  std::string extra_repr() const override { return "approximate='" + approximate + "'"; }
  bool row_independent() const override { return true; }
  std::string approximate;

 protected:
  Tensor forward(const Tensor& x) override;
};

class Dropout : public Module {
 public:
  // gen = nullptr draws from the default generator; a given generator must outlive the module.
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  std::string extra_repr() const override;
  // In training it draws a mask for every element, so a subset of rows would shift the draws.
  bool row_independent() const override { return !is_training() || p == 0.0; }
  double p;

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  Generator* gen_;
};

}  // namespace quench::nn
