// Creating tensors: constants, ranges, data from memory, random numbers from a seedable generator.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "engine/generator.hpp"
#include "engine/tensor.hpp"

namespace quench {

Tensor empty(const Shape& shape, DType dtype = kFloat32);
Tensor zeros(const Shape& shape, DType dtype = kFloat32);
Tensor ones(const Shape& shape, DType dtype = kFloat32);
Tensor full(const Shape& shape, double value, DType dtype = kFloat32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// [end - start) / step values start, start + step, ... (like torch.arange).
Tensor arange(double start, double end, double step = 1.0, DType dtype = kFloat32);
Tensor arange(int64_t end, DType dtype = kFloat32);

// Copies `data` into a new tensor of `shape` (default: 1-D). numel must match.
Tensor tensor(const std::vector<float>& data, const Shape& shape = {});
Tensor tensor(const std::vector<int32_t>& data, const Shape& shape = {}, DType dtype = kInt32);
// Literal forms: tensor({1.f, 2.f}) is float32, tensor({1, 2}) is int32.
inline Tensor tensor(std::initializer_list<float> data, const Shape& shape = {}) {
  return tensor(std::vector<float>(data), shape);
}
inline Tensor tensor(std::initializer_list<int32_t> data, const Shape& shape = {},
                     DType dtype = kInt32) {
  return tensor(std::vector<int32_t>(data), shape, dtype);
}
// Copies numel(shape) elements of `dtype` from `data` (the caller's buffer is not kept).
Tensor from_blob(const void* data, const Shape& shape, DType dtype = kFloat32);
// A 0-dim tensor holding `value`.
Tensor scalar_tensor(double value, DType dtype = kFloat32);

// Uniform [0, 1), standard normal, and integers in [low, high). Without a generator they draw from
// the default generator (seeded by manual_seed).
Tensor rand(const Shape& shape, Generator& gen);
Tensor randn(const Shape& shape, Generator& gen);
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype = kInt32);
Tensor rand(const Shape& shape);
Tensor randn(const Shape& shape);
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = kInt32);
// A random permutation of 0..n-1 (int32).
Tensor randperm(int64_t n, Generator& gen);

}  // namespace quench
