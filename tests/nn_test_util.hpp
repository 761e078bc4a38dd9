// Helpers shared by the nn op tests: thread-count invariance and forward+backward in one call.
#pragma once
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"

namespace quench::testing {

using TL = std::vector<Tensor>;

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
    CHECK(a[i].sizes() == b[i].sizes());
    CHECK(a[i].to_vector<float>() == b[i].to_vector<float>());
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
