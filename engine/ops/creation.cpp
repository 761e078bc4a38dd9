#include "engine/ops/creation.hpp"

#include <cmath>
#include <cstring>
#include <numeric>

namespace quench {

Tensor empty(const Shape& shape, DType dtype) { return Tensor::empty(shape, dtype); }

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), t.dtype()); }
Tensor empty_like(const Tensor& t) { return empty(t.sizes(), t.dtype()); }
Tensor full_like(const Tensor& t, double value) { return full(t.sizes(), value, t.dtype()); }

Tensor arange(double start, double end, double step, DType dtype) {
  QUENCH_CHECK(step != 0.0, "arange: step must be nonzero");
  QUENCH_CHECK((end - start) / step >= 0, "arange: the range [", start, ", ", end,
               ") is empty or reversed for step ", step);
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = Tensor::empty({n}, dtype);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

Tensor arange(int64_t end, DType dtype) { return arange(0.0, static_cast<double>(end), 1.0, dtype); }

namespace {
Shape data_shape(const Shape& shape, size_t n, const char* op) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(n)} : shape;
  QUENCH_CHECK(shape_numel(s) == static_cast<int64_t>(n), op, ": ", n,
               " values do not fill shape ", shape_str(s), " (", shape_numel(s), " elements)");
  return s;
}
}  // namespace

Tensor tensor(const std::vector<float>& data, const Shape& shape) {
  return from_blob(data.data(), data_shape(shape, data.size(), "tensor"), kFloat32);
}

Tensor tensor(const std::vector<int32_t>& data, const Shape& shape, DType dtype) {
  Tensor t = from_blob(data.data(), data_shape(shape, data.size(), "tensor"), kInt32);
  return dtype == kInt32 ? t : t.to(dtype);
}

Tensor from_blob(const void* data, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  if (t.nbytes()) std::memcpy(t.raw_data(), data, t.nbytes());
  return t;
}

Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }

// Random fills are sequential over elements so a seed gives the same tensor on any thread count.
Tensor rand(const Shape& shape, Generator& gen) {
  Tensor t = Tensor::empty(shape, kFloat32);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = gen.uniform();
  return t;
}

Tensor randn(const Shape& shape, Generator& gen) {
  Tensor t = Tensor::empty(shape, kFloat32);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = gen.normal();
  return t;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype) {
  QUENCH_CHECK(low < high, "randint: expected low < high, got [", low, ", ", high, ")");
  Tensor t = Tensor::empty(shape, kInt32);
  int32_t* p = t.data_ptr<int32_t>();
  const uint64_t span = static_cast<uint64_t>(high - low);
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    p[i] = static_cast<int32_t>(low + static_cast<int64_t>(gen.below(span)));
  return dtype == kInt32 ? t : t.to(dtype);
}

Tensor rand(const Shape& shape) { return rand(shape, default_generator()); }
Tensor randn(const Shape& shape) { return randn(shape, default_generator()); }
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype) {
  return randint(low, high, shape, default_generator(), dtype);
}

Tensor randperm(int64_t n, Generator& gen) {
  Tensor t = Tensor::empty({n}, kInt32);
  int32_t* p = t.data_ptr<int32_t>();
  std::iota(p, p + n, 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[gen.below(static_cast<uint64_t>(i + 1))]);
  return t;
}

}  // namespace quench
