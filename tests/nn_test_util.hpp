// Helpers shared by the tests: bitwise equality, thread-count invariance, forward+backward in one call.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"

namespace quench::testing {

using TL = std::vector<Tensor>;

// Same shape, dtype and bytes (NaN payloads and the sign of zero included).
inline bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

// max |t| over the elements.
inline double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// Runs f with 1 and then 2 threads and checks every returned tensor is bit-identical.
template <class F>
inline void check_thread_invariant(F f) {
  const int prev = get_num_threads();
  set_num_threads(1);
  TL a = f();
  set_num_threads(2);
  TL b = f();
  set_num_threads(prev);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(bit_equal(a[i], b[i]));
  }
}

// Output and input gradients of f(inputs) for the upstream gradient g.
inline TL forward_backward(const std::function<Tensor(const TL&)>& f, TL inputs, const Tensor& g) {
  for (Tensor& x : inputs) x = x.detach().clone().requires_grad_(true);
  Tensor y = f(inputs);
  y.backward(g);
  TL out{y.detach()};
  for (const Tensor& x : inputs) out.push_back(x.grad());
  return out;
}

}  // namespace quench::testing
