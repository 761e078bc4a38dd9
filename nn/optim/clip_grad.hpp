// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
#pragma once
#include <vector>

#include "engine/tensor.hpp"

namespace quench::optim {

// total = the norm_type-norm of all gradients together (2 or infinity); when total > max_norm every
// gradient is scaled by max_norm / (total + 1e-6). Parameters without a grad are skipped. Returns
// total (before clipping). The sum is accumulated in double, serially, so it does not depend on
// the thread count.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

}  // namespace quench::optim
