// Reductions over dims (negative dims count from the end; an empty dim list means all dims).
#pragma once
#include <vector>

#include "engine/tensor.hpp"

namespace quench {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), as torch.var: sum of squared
// deviations / max(0, n - correction), so n <= correction gives inf or NaN.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
// Max / min values over one dim (float32; NaN counts as the extreme, as PyTorch). The gradient goes
// to the first maximal (minimal) element, the one PyTorch's max(dim) indices name. Throws on an
// empty dim.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
// Over all elements, 0-dim result. The gradient is split evenly over all elements equal to the
// result, as PyTorch's max() / min(). Throws on an empty tensor.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// Index (int32) of the first maximal (minimal) element along dim; a NaN counts as maximal. No gradient.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

// Sums `grad` down to `shape` over broadcast dims: the one helper every broadcasting backward uses.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace quench
