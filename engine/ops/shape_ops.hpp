// Joining tensors. (Views live on Tensor: view, reshape, permute, narrow, expand, ...)
#pragma once
#include <vector>

#include "engine/tensor.hpp"

namespace quench {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);

}  // namespace quench
