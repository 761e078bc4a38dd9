// Golden files: tests/golden/*.safetensors, written from PyTorch 1.13 by the make_*.py scripts next to
// them (all through tests/golden/safetensors_writer.py), read with nn::load_safetensors. Plus the error
// measures the golden tests compare with.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/tensor.hpp"
#include "nn/io/safetensors.hpp"

namespace quench::testing {

inline std::string golden_path(const std::string& file) {
  return std::string(QUENCH_SOURCE_DIR) + "/tests/golden/" + file;
}

// The whole file tests/golden/<file>; load errors (missing or malformed file) fail the test.
inline nn::SafeTensorsFile load_golden(const std::string& file) {
  return nn::load_safetensors(golden_path(file));
}

// A U8 tensor written by safetensors_writer.text() back as the string it holds.
inline std::string golden_text(const Tensor& t) {
  REQUIRE_MESSAGE(t.dtype() == kUInt8, "golden text tensor must be u8");
  REQUIRE(t.dim() == 1);
  std::string s(static_cast<size_t>(t.numel()), '\0');
  const uint8_t* p = t.contiguous().data_ptr<uint8_t>();
  std::copy(p, p + t.numel(), s.begin());
  return s;
}

// max_i |a_i - b_i| / max(|b_i|, floor): a relative error that does not blow up near zero.
inline double max_rel_err(const Tensor& a, const Tensor& b, double floor = 1e-3) {
  REQUIRE(a.sizes() == b.sizes());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0.0;
  for (size_t i = 0; i < x.size(); ++i)
    m = std::max(m, std::abs(x[i] - y[i]) / std::max(std::abs(y[i]), floor));
  return m;
}

// max_i |a_i - b_i| / max_i |b_i|: error relative to the tensor's scale (for float32 results whose
// summation order differs from PyTorch's, where tiny elements carry only absolute accuracy).
inline double scaled_err(const Tensor& a, const Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0.0, s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    m = std::max(m, std::abs(x[i] - y[i]));
    s = std::max(s, std::abs(y[i]));
  }
  return s > 0 ? m / s : m;
}

}  // namespace quench::testing
