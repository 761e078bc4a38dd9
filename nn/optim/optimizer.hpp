// Optimizer base, parameter groups and optimizer state (torch.optim.Optimizer, libtorch-like).
//
// Parameters live in groups; a group may override the optimizer's lr and weight_decay (the other
// hyperparameters are per optimizer). Per-parameter state (step count and named buffers such as
// exp_avg) is created lazily on the first step, as PyTorch. Parameters are numbered 0.. in group
// order; state_dict() names each entry "state.<index>.<buffer>" ("state.<index>.step" is an int32
// scalar), so an optimizer's state can sit in a safetensors checkpoint beside the model. Updates run
// as fused raw float loops split over elements with kernels::parallel_for, outside autograd.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.hpp"
#include "nn/module.hpp"

// libtorch's TORCH_ARG: a private field `name_` with a chainable setter name(v) and a getter name().
#define QUENCH_ARG(T, name)                         \
 public:                                            \
  auto& name(const T& new_##name) {                 \
    this->name##_ = new_##name;                     \
    return *this;                                   \
  }                                                 \
  const T& name() const noexcept { return name##_; } \
                                                    \
 private:                                           \
  T name##_

namespace quench::optim {

using nn::StateDict;

struct ParamGroup {
  std::vector<Tensor> params;
  std::vector<std::string> names;          // optional (empty or one per param), for messages
  std::optional<double> lr, weight_decay;  // unset: the optimizer's defaults at construction
  ParamGroup() = default;
  ParamGroup(std::vector<Tensor> p) : params(std::move(p)) {}
};

// timm's param_groups_weight_decay: parameters with fewer than 2 dims (biases, norm weights) or
// whose name ends in ".bias" or is listed in no_decay get weight_decay 0; the rest `weight_decay`.
// Parameters that do not require grad are left out. Returns {decay group, no-decay group} (either
// may be empty).
std::vector<ParamGroup> param_groups_weight_decay(const std::vector<std::pair<std::string, Tensor>>& named,
                                                 double weight_decay,
                                                 const std::vector<std::string>& no_decay = {});

struct ParamState {
  int64_t step = 0;
  std::map<std::string, Tensor> buffers;  // each the shape of its parameter
};

class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay, std::string name);
  virtual ~Optimizer() = default;

  // One update of every parameter with a defined grad.
  virtual void step() = 0;
  // Drops (set_to_none, the PyTorch 2.x default) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true);

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Sets lr on every group (schedules use this).
  void set_lr(double lr);
  int64_t num_params() const;
  const ParamState& state(int64_t index) const { return state_.at(index); }

  StateDict state_dict() const;
  // Replaces the state with `sd` (as produced by state_dict()). Throws listing unknown keys, wrong
  // shapes and buffers this optimizer does not use, all in one message.
  void load_state_dict(const StateDict& sd);

 protected:
  // Buffers one parameter's state must hold once it has stepped (checked on load).
  virtual std::vector<std::string> state_buffer_names() const = 0;
  // Buffers that may be absent even after a step (SGD's momentum_buffer when momentum = 0).
  virtual bool buffers_optional() const { return false; }
  // f(param, grad, state, lr, weight_decay) for every param with a grad; grads must be contiguous.
  template <class F>
  void for_each_param(F&& f) {
    int64_t idx = 0;
    for (auto& g : groups_) {
      const double lr = g.lr.value(), wd = g.weight_decay.value();
      for (size_t i = 0; i < g.params.size(); ++i, ++idx) {
        Tensor& p = g.params[i];
        Tensor grad = p.grad();
        if (!grad.defined()) continue;
        check_param(p, grad, idx);
        f(p, grad, state_[idx], lr, wd);
      }
    }
  }

  std::string name_;

 private:
  void check_param(const Tensor& p, const Tensor& grad, int64_t idx) const;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;
};

}  // namespace quench::optim
