// Gradient check by central finite differences, for every op's backward.
//
// The op's output is reduced to L = sum(f(inputs) * R) with a fixed random R, so every output element
// takes part. Analytic gradients come from backward(R); numeric ones from (L(x+h) - L(x-h)) / 2h,
// with L accumulated in double. Inputs are float32, so the tolerance is
// |numeric - analytic| <= atol + rtol * |numeric| with h = 1e-3, atol = 1e-3, rtol = 1e-2 by default.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"

namespace quench::testing {

struct GradcheckOptions {
  double h = 1e-3;
  double atol = 1e-3;
  double rtol = 1e-2;
  uint64_t seed = 1234;
};

inline double weighted_sum(const Tensor& out, const Tensor& r) {
  std::vector<double> o = out.to_vector<double>(), w = r.to_vector<double>();
  double s = 0.0;
  for (size_t i = 0; i < o.size(); ++i) s += o[i] * w[i];
  return s;
}

// Returns true when every input's gradient matches; reports the first mismatches through doctest.
inline bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      std::vector<Tensor> inputs, GradcheckOptions opt = {}) {
  for (Tensor& x : inputs) {
    x = x.detach().contiguous().clone();
    x.requires_grad_(true);
  }
  Tensor out = f(inputs);
  Generator gen(opt.seed);
  Tensor r = randn(out.sizes(), gen);
  out.backward(r);
  bool ok = true;
  int reported = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor x = inputs[k];
    Tensor g = x.grad();
    std::vector<double> ana = g.defined() ? g.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    float* p = x.data_ptr<float>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float orig = p[i];
      double lp, lm;
      {
        NoGradGuard ng;
        p[i] = static_cast<float>(orig + opt.h);
        lp = weighted_sum(f(inputs), r);
        p[i] = static_cast<float>(orig - opt.h);
        lm = weighted_sum(f(inputs), r);
        p[i] = orig;
      }
      // The step actually taken in float.
      double step = static_cast<double>(static_cast<float>(orig + opt.h)) -
                    static_cast<double>(static_cast<float>(orig - opt.h));
      double num = (lp - lm) / step;
      if (std::abs(num - ana[i]) > opt.atol + opt.rtol * std::abs(num)) {
        ok = false;
        if (reported++ < 5)
          FAIL_CHECK("gradcheck: input " << k << " element " << i << ": numeric " << num
                                         << " vs analytic " << ana[i]);
      }
    }
  }
  return ok;
}

// Max |a - b| over elements (shapes must match).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0.0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace quench::testing
