// SGD with momentum, dampening, Nesterov and L2 weight decay: PyTorch 1.13 _single_tensor_sgd.
//   d = g + wd * p;  buf = d (first step) or momentum * buf + (1 - dampening) * d;
//   d = nesterov ? d + momentum * buf : buf;  p -= lr * d
// State: "momentum_buffer" (only with momentum != 0).
#pragma once
#include "nn/optim/optimizer.hpp"

namespace quench::optim {

struct SGDOptions {
  explicit SGDOptions(double lr_ = 1e-3) : lr(lr_) {}
  SGDOptions& momentum_(double v) { momentum = v; return *this; }
  SGDOptions& dampening_(double v) { dampening = v; return *this; }
  SGDOptions& nesterov_(bool v) { nesterov = v; return *this; }
  SGDOptions& weight_decay_(double v) { weight_decay = v; return *this; }
  double lr, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
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
