#include "nn/optim/lr_schedule.hpp"

#include <cmath>

namespace quench::optim {

LRSchedule::LRSchedule(Optimizer* opt, LRScheduleOptions o) : opt_(opt), o_(o) {
  QUENCH_CHECK(o.base_lr >= 0.0 && o.min_lr >= 0.0 && o.min_lr <= o.base_lr,
               "LRSchedule: need 0 <= min_lr <= base_lr, got min_lr ", o.min_lr, " base_lr ", o.base_lr);
  QUENCH_CHECK(o.warmup_steps >= 0 && o.total_steps >= 1 && o.warmup_steps <= o.total_steps,
               "LRSchedule: need 0 <= warmup_steps <= total_steps and total_steps >= 1, got warmup ",
               o.warmup_steps, " total ", o.total_steps);
  if (opt_)
    for (const auto& g : opt_->param_groups())
      ratios_.push_back(o.base_lr > 0.0 ? g.lr.value() / o.base_lr : 1.0);
  apply();
}

double LRSchedule::lr_at(int64_t s) const {
  QUENCH_CHECK(s >= 0, "LRSchedule: negative step ", s);
  if (s < o_.warmup_steps) return o_.base_lr * static_cast<double>(s + 1) / static_cast<double>(o_.warmup_steps);
  if (o_.decay == Decay::constant) return o_.base_lr;
  if (s >= o_.total_steps) return o_.min_lr;
  const double t = static_cast<double>(s - o_.warmup_steps) / static_cast<double>(o_.total_steps - o_.warmup_steps);
  const double f = o_.decay == Decay::cosine ? 0.5 * (1.0 + std::cos(M_PI * t)) : 1.0 - t;
  return o_.min_lr + (o_.base_lr - o_.min_lr) * f;
}

void LRSchedule::apply() {
  if (!opt_) return;
  const double lr = lr_at(step_);
  auto& groups = opt_->param_groups();
  QUENCH_CHECK(groups.size() == ratios_.size(), "LRSchedule: the optimizer's groups changed (",
               ratios_.size(), " -> ", groups.size(), ")");
  for (size_t i = 0; i < groups.size(); ++i) groups[i].lr = lr * ratios_[i];
}

void LRSchedule::step() {
  ++step_;
  apply();
}

void LRSchedule::set_step(int64_t s) {
  QUENCH_CHECK(s >= 0, "LRSchedule: negative step ", s);
  step_ = s;
  apply();
}

}  // namespace quench::optim
