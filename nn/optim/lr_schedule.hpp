// Per-step learning-rate schedule: linear warmup, then cosine or linear decay to a floor.
//   s < warmup:           lr = base_lr * (s + 1) / warmup
//   warmup <= s < total:  t = (s - warmup) / (total - warmup)
//                         cosine: lr = min_lr + (base_lr - min_lr) * (1 + cos(pi t)) / 2
//                         linear: lr = min_lr + (base_lr - min_lr) * (1 - t)
//                         constant: lr = base_lr
//   s >= total:           lr = min_lr (constant: base_lr)
// Usage (as torch.optim.lr_scheduler): the constructor sets the step-0 lr on the optimizer; call
// opt.step() then sched.step() each iteration. Groups keep their ratio to base_lr.
#pragma once
#include <vector>

#include "nn/optim/optimizer.hpp"

namespace quench::optim {

enum class Decay { cosine, linear, constant };

struct LRScheduleOptions {
  double base_lr = 1e-3, min_lr = 0.0;
  int64_t warmup_steps = 0, total_steps = 1;
  Decay decay = Decay::cosine;
};

class LRSchedule {
 public:
  // opt may be null: then the schedule only computes lr_at.
  LRSchedule(Optimizer* opt, LRScheduleOptions o);
  double lr_at(int64_t step) const;
  // Advances one step and writes the new lr into the optimizer.
  void step();
  int64_t current_step() const { return step_; }
  double current_lr() const { return lr_at(step_); }
  // Jumps to `step` (resuming from a checkpoint).
  void set_step(int64_t step);

 private:
  void apply();
  Optimizer* opt_;
  LRScheduleOptions o_;
  std::vector<double> ratios_;  // group initial lr / base_lr
  int64_t step_ = 0;
};

}  // namespace quench::optim
