// AdamW (decoupled weight decay), PyTorch 1.13 _single_tensor_adamw order of operations:
//   step += 1;  p *= 1 - lr * wd;  m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p += -(lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. No amsgrad.
// State: "exp_avg", "exp_avg_sq" and the step count.
#pragma once
#include <utility>

#include "nn/optim/optimizer.hpp"

namespace quench::optim {

// AdamWOptions(lr).betas({0.9, 0.95}).weight_decay(0.05), as libtorch.
struct AdamWOptions {
  using Betas = std::pair<double, double>;
  explicit AdamWOptions(double lr = 1e-3) : lr_(lr) {}
  QUENCH_ARG(double, lr);
  QUENCH_ARG(Betas, betas) = {0.9, 0.999};
  QUENCH_ARG(double, eps) = 1e-8;
  QUENCH_ARG(double, weight_decay) = 1e-2;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions opt = AdamWOptions());
  AdamW(std::vector<Tensor> params, AdamWOptions opt = AdamWOptions())
      : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, opt) {}
  void step() override;
  const AdamWOptions& options() const { return opt_; }

 protected:
  std::vector<std::string> state_buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  AdamWOptions opt_;
};

}  // namespace quench::optim
