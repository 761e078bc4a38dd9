// Shapes and strides, and the checks every op shares.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace quench {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);                 // "[2, 3]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
// Normalizes a possibly negative dim into [0, ndim); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
// PyTorch broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace quench
