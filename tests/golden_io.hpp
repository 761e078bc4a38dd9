// Reads the plain-text golden files written by tests/golden/golden_format.py:
//   tensor <name> <f32|i32> <ndim> <dims...>   then one line of row-major values.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/ops.hpp"
#include "nn/module.hpp"

namespace quench::testing {

inline std::string golden_path(const std::string& file) {
  return std::string(QUENCH_SOURCE_DIR) + "/tests/golden/" + file;
}

inline nn::StateDict read_golden(const std::string& file) {
  std::ifstream in(golden_path(file));
  REQUIRE_MESSAGE(in.good(), "cannot open golden file " << golden_path(file));
  nn::StateDict out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream hs(line);
    std::string tag, name, kind;
    int64_t ndim = 0;
    hs >> tag >> name >> kind >> ndim;
    REQUIRE_MESSAGE(tag == "tensor", "bad golden header: " << line);
    Shape shape(ndim);
    for (auto& d : shape) hs >> d;
    std::string values;
    std::getline(in, values);
    std::istringstream vs(values);
    const int64_t n = shape_numel(shape);
    if (kind == "i32") {
      std::vector<int32_t> v(n);
      for (auto& x : v) vs >> x;
      out.insert(name, tensor(v, shape));
    } else {
      std::vector<float> v(n);
      for (auto& x : v) {
        std::string tok;
        vs >> tok;
        x = std::stof(tok);
      }
      out.insert(name, tensor(v, shape));
    }
  }
  return out;
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
