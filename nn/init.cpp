#include "nn/init.hpp"

#include <cmath>

#include "engine/autograd.hpp"

namespace quench::nn::init {
namespace {

float* writable(Tensor& t, const char* op) {
  check_defined(t, op, "tensor");
  check_dtype(t, kFloat32, op, "tensor");
  QUENCH_CHECK(t.is_contiguous(), op, ": expected a contiguous tensor, got shape ",
               shape_str(t.sizes()), " with strides ", shape_str(t.strides()));
  return t.data_ptr<float>();
}

}  // namespace

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  QUENCH_CHECK(t.dim() >= 2, "init: fan in and fan out need a tensor of at least 2 dims, got ",
               shape_str(t.sizes()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

void constant_(Tensor& t, double value) {
  writable(t, "constant_");
  NoGradGuard ng;
  t.fill_(value);
}
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

void uniform_(Tensor& t, double a, double b, Generator& gen) {
  float* p = writable(t, "uniform_");
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(a + (b - a) * gen.uniform());
}

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  float* p = writable(t, "normal_");
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(mean + std * gen.normal());
}

void trunc_normal_(Tensor& t, double mean, double std, double a, double b, Generator& gen) {
  float* p = writable(t, "trunc_normal_");
  QUENCH_CHECK(a < b && std > 0, "trunc_normal_: need a < b and std > 0, got a=", a, " b=", b,
               " std=", std);
  // Rejection needs the window to hold real probability mass; 1e-3 of a std keeps it bounded.
  QUENCH_CHECK((b - mean) / std > -6 && (a - mean) / std < 6 && (b - a) / std > 1e-3,
               "trunc_normal_: the window [", a, ", ", b, "] is too far from N(", mean, ", ", std, ")");
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v;
    do v = mean + std * gen.normal();
    while (v < a || v > b);
    p[i] = static_cast<float>(v);
  }
}

void kaiming_uniform_(Tensor& t, double a, Generator& gen) {
  const int64_t fan_in = fan_in_and_fan_out(t).first;
  QUENCH_CHECK(fan_in > 0, "kaiming_uniform_: zero fan in for shape ", shape_str(t.sizes()));
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in));
  uniform_(t, -bound, bound, gen);
}

}  // namespace quench::nn::init
