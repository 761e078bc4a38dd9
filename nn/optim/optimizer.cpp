#include "nn/optim/optimizer.hpp"

#include <algorithm>
#include <cstdlib>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"

namespace quench::optim {

std::vector<ParamGroup> param_groups_weight_decay(const std::vector<std::pair<std::string, Tensor>>& named,
                                                 double weight_decay, const std::vector<std::string>& no_decay) {
  ParamGroup decay, none;
  decay.weight_decay = weight_decay;
  none.weight_decay = 0.0;
  auto ends_with = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (const auto& [name, p] : named) {
    if (!p.requires_grad()) continue;
    const bool skip = p.dim() <= 1 || ends_with(name, ".bias") ||
                      std::find(no_decay.begin(), no_decay.end(), name) != no_decay.end();
    ParamGroup& g = skip ? none : decay;
    g.params.push_back(p);
    g.names.push_back(name);
  }
  return {decay, none};
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay, std::string name)
    : name_(std::move(name)), groups_(std::move(groups)) {
  QUENCH_CHECK(lr >= 0.0, name_, ": invalid learning rate ", lr);
  QUENCH_CHECK(weight_decay >= 0.0, name_, ": invalid weight_decay ", weight_decay);
  int64_t n = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (!g.lr) g.lr = lr;
    if (!g.weight_decay) g.weight_decay = weight_decay;
    QUENCH_CHECK(*g.lr >= 0.0 && *g.weight_decay >= 0.0, name_, ": group ", gi, " has lr ", *g.lr,
                 " and weight_decay ", *g.weight_decay, "; both must be >= 0");
    QUENCH_CHECK(g.names.empty() || g.names.size() == g.params.size(), name_, ": group ", gi, " has ",
                 g.params.size(), " params but ", g.names.size(), " names");
    for (const Tensor& p : g.params) {
      check_defined(p, name_.c_str(), "parameter");
      QUENCH_CHECK(p.is_leaf() && p.dtype() == kFloat32 && p.is_contiguous(), name_,
                   ": parameters must be contiguous float32 leaves, got ", dtype_name(p.dtype()), " ",
                   shape_str(p.sizes()));
    }
    n += static_cast<int64_t>(g.params.size());
  }
  state_.resize(n);
}

int64_t Optimizer::num_params() const { return static_cast<int64_t>(state_.size()); }

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard ng;
  for (auto& g : groups_)
    for (Tensor& p : g.params) {
      if (!p.grad().defined()) continue;
      if (set_to_none)
        p.set_grad(Tensor());
      else
        p.grad().zero_();
    }
}

void Optimizer::set_lr(double lr) {
  for (auto& g : groups_) g.lr = lr;
}

void Optimizer::check_param(const Tensor& p, const Tensor& grad, int64_t idx) const {
  QUENCH_CHECK(grad.sizes() == p.sizes() && grad.dtype() == kFloat32 && grad.is_contiguous(), name_,
               ": gradient of parameter ", idx, " is ", dtype_name(grad.dtype()), " ", shape_str(grad.sizes()),
               (grad.is_contiguous() ? "" : " (non-contiguous)"), "; expected contiguous float32 ",
               shape_str(p.sizes()));
}

StateDict Optimizer::state_dict() const {
  StateDict sd;
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& s = state_[i];
    if (s.step == 0 && s.buffers.empty()) continue;
    const std::string pre = "state." + std::to_string(i) + ".";
    sd.insert(pre + "step", scalar_tensor(static_cast<double>(s.step), kInt32));
    for (const auto& [n, t] : s.buffers) sd.insert(pre + n, t.clone());
  }
  return sd;
}

void Optimizer::load_state_dict(const StateDict& sd) {
  NoGradGuard ng;
  std::vector<Tensor> params;
  for (const auto& g : groups_) params.insert(params.end(), g.params.begin(), g.params.end());
  const std::vector<std::string> bufs = state_buffer_names();
  std::vector<ParamState> next(state_.size());
  std::vector<std::string> problems;
  for (const auto& [key, t] : sd) {
    // "state.<i>.<name>"
    const size_t dot = key.find('.', 6);
    char* end = nullptr;
    const long idx = key.rfind("state.", 0) == 0 && dot != std::string::npos
                         ? std::strtol(key.c_str() + 6, &end, 10) : -1;
    if (idx < 0 || end != key.c_str() + dot || idx >= static_cast<long>(params.size())) {
      problems.push_back("unexpected key " + key);
      continue;
    }
    const std::string name = key.substr(dot + 1);
    if (name == "step") {
      if (!t.defined() || t.numel() != 1 || t.item<double>() < 0) {
        problems.push_back(key + " must be a non-negative scalar");
        continue;
      }
      next[idx].step = static_cast<int64_t>(t.item<double>());
    } else if (std::find(bufs.begin(), bufs.end(), name) == bufs.end()) {
      problems.push_back("unexpected key " + key + " (" + name_ + " keeps no '" + name + "')");
    } else if (!t.defined() || t.sizes() != params[idx].sizes() || t.dtype() != kFloat32) {
      problems.push_back(key + " has shape " + (t.defined() ? shape_str(t.sizes()) : "undefined") +
                         ", parameter has " + shape_str(params[idx].sizes()));
    } else {
      next[idx].buffers[name] = t.contiguous().clone();
    }
  }
  for (size_t i = 0; i < next.size(); ++i) {
    const ParamState& s = next[i];
    if (s.step == 0 && s.buffers.empty()) continue;
    if (buffers_optional() && !s.buffers.empty() && s.buffers.size() != bufs.size())
      problems.push_back("state." + std::to_string(i) + " is incomplete");
    if (!buffers_optional() && s.buffers.size() != bufs.size())
      problems.push_back("state." + std::to_string(i) + " lacks some of its buffers");
  }
  if (!problems.empty()) {
    std::string msg = name_ + ": load_state_dict:";
    for (const auto& p : problems) msg += " " + p + ";";
    throw Error(msg);
  }
  state_ = std::move(next);
}

}  // namespace quench::optim
