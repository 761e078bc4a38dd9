// SGD with momentum, dampening, Nesterov and L2 weight decay: PyTorch 1.13 _single_tensor_sgd.
//   d = g + wd * p;  buf = d (first step) or momentum * buf + (1 - dampening) * d;
//   d = nesterov ? d + momentum * buf : buf;  p -= lr * d
// State: "momentum_buffer" (only with momentum != 0).
#pragma once
#include "nn/optim/optimizer.hpp"

namespace quench::optim {

// SGDOptions(lr).momentum(0.9).nesterov(true), as libtorch.
struct SGDOptions {
  explicit SGDOptions(double lr) : lr_(lr) {}
  QUENCH_ARG(double, lr);
  QUENCH_ARG(double, momentum) = 0.0;
  QUENCH_ARG(double, dampening) = 0.0;
  QUENCH_ARG(double, weight_decay) = 0.0;
  QUENCH_ARG(bool, nesterov) = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions opt);
  SGD(std::vector<Tensor> params, SGDOptions opt) : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, opt) {}
  void step() override;
  const SGDOptions& options() const { return opt_; }

 protected:
  std::vector<std::string> state_buffer_names() const override { return {"momentum_buffer"}; }
  bool buffers_optional() const override { return true; }

 private:
  SGDOptions opt_;
};

}  // namespace quench::optim
