// Linear: y = x W^T + b (torch.nn.Linear).
//   x [..., in] -> y [..., out];  weight [out, in], bias [out] (absent when bias = false).
// Init as PyTorch: weight kaiming_uniform(a = sqrt(5)) (= U(+-1/sqrt(in))), bias U(+-1/sqrt(in)).
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen);
  void reset_parameters(Generator& gen);
  std::string extra_repr() const override;
  bool row_independent() const override { return true; }

  int64_t in_features, out_features;
  Tensor weight, bias;  // handles to the registered parameters

 protected:
  Tensor forward(const Tensor& x) override;
};

}  // namespace quench::nn
