// Math functions: pow, exp, log, sqrt, rsqrt, abs, clamp. Forward and backward side by side; each
// backward is one fused element-wise pass (backward runs without grad recording).
#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "engine/elementwise.hpp"
#include "engine/ops/pointwise.hpp"
#include "engine/ops/reduce.hpp"
#include "kernels/vmath.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;
using detail::map_binary;
using detail::map_nary;
using detail::map_unary;

// x^e for a scalar exponent, with the special cases PyTorch's pow kernel takes (squares and
// roots as multiplies and sqrt, not std::pow, which would round differently).
Tensor pow_scalar_forward(const Tensor& a, double e) {
  const float ef = static_cast<float>(e);
  if (e == 1.0) return map_unary(a, "pow", [](float x) { return x; });
  if (e == 2.0) return map_unary(a, "pow", [](float x) { return x * x; });
  if (e == 3.0) return map_unary(a, "pow", [](float x) { return x * x * x; });
  if (e == 0.5) return map_unary(a, "pow", [](float x) { return std::sqrt(x); });
  if (e == -0.5) return map_unary(a, "pow", [](float x) { return 1.0f / std::sqrt(x); });
  if (e == -1.0) return map_unary(a, "pow", [](float x) { return 1.0f / x; });
  if (e == -2.0) return map_unary(a, "pow", [](float x) { return 1.0f / (x * x); });
  return map_unary(a, "pow", [ef](float x) { return std::pow(x, ef); });
}

// y = x^e;  dx = g * e * x^(e-1)  (0 when e == 0, as PyTorch)
struct PowScalarFn : Function<PowScalarFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, double e) {
    ctx->save_for_backward({a});
    ctx->saved_data["e"] = e;
    return pow_scalar_forward(a, e);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor x = ctx->get_saved_variables()[0];
    const double e = std::get<double>(ctx->saved_data["e"]);
    const float ef = static_cast<float>(e), em1 = static_cast<float>(e - 1.0);
    if (e == 0.0) return {map_binary(g[0], x, "pow_backward", [](float, float) { return 0.0f; })};
    if (e == 1.0) return {g[0]};
    if (e == 2.0)
      return {map_binary(g[0], x, "pow_backward", [](float gv, float xv) { return gv * 2.0f * xv; })};
    return {map_binary(g[0], x, "pow_backward",
                       [ef, em1](float gv, float xv) { return gv * (ef * std::pow(xv, em1)); })};
  }
};

// y = a^b (broadcast);  da = g * b * a^(b-1) (0 where b == 0),  db = g * y * log(a) (0 where a == 0
// and b >= 0), the masks PyTorch's pow backward applies.
struct PowTensorFn : Function<PowTensorFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    Tensor y = map_binary(a, b, "pow", [](float x, float e) { return std::pow(x, e); });
    ctx->save_for_backward({a, b, ctx->needs_input_grad(1) ? y : Tensor()});
    ctx->saved_data["a"] = a.sizes();
    ctx->saved_data["b"] = b.sizes();
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    auto& s = ctx->saved_data;
    Tensor ga, gb;
    if (ctx->needs_input_grad(0))
      ga = sum_to(
          map_nary<float, float, float, float>(
              "pow_backward",
              [](float gv, float x, float e) { return e == 0.0f ? 0.0f : gv * (e * std::pow(x, e - 1.0f)); },
              {g[0], v[0], v[1]}),
          std::get<Shape>(s["a"]));
    if (ctx->needs_input_grad(1))
      gb = sum_to(map_nary<float, float, float, float, float>("pow_backward",
                                                              [](float gv, float x, float e, float y) {
                                                                return (x == 0.0f && e >= 0.0f)
                                                                           ? 0.0f
                                                                           : gv * (y * std::log(x));
                                                              },
                                                              {g[0], v[0], v[1], v[2]}),
                  std::get<Shape>(s["b"]));
    return {ga, gb};
  }
};

// y = exp(x);  dx = g * y
struct ExpFn : Function<ExpFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    Tensor y = map_unary(a, "exp", [](float x) { return kernels::vexp(x); });
    ctx->save_for_backward({y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "exp_backward",
                       [](float gv, float y) { return gv * y; })};
  }
};

// y = log(x);  dx = g / x
struct LogFn : Function<LogFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    ctx->save_for_backward({a});
    return map_unary(a, "log", [](float x) { return std::log(x); });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "log_backward",
                       [](float gv, float x) { return gv / x; })};
  }
};

// y = sqrt(x);  dx = g / (2 y)
struct SqrtFn : Function<SqrtFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    Tensor y = map_unary(a, "sqrt", [](float x) { return std::sqrt(x); });
    ctx->save_for_backward({y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "sqrt_backward",
                       [](float gv, float y) { return gv / (2.0f * y); })};
  }
};

// y = 1 / sqrt(x);  dx = -0.5 * g * y^3
struct RsqrtFn : Function<RsqrtFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    Tensor y = map_unary(a, "rsqrt", [](float x) { return 1.0f / std::sqrt(x); });
    ctx->save_for_backward({y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "rsqrt_backward",
                       [](float gv, float y) { return -0.5f * gv * (y * y * y); })};
  }
};

// y = |x|;  dx = g * sign(x), 0 at 0
struct AbsFn : Function<AbsFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    ctx->save_for_backward({a});
    return map_unary(a, "abs", [](float x) { return std::fabs(x); });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "abs_backward",
                       [](float gv, float x) { return x > 0.0f ? gv : (x < 0.0f ? -gv : 0.0f); })};
  }
};

// y = min(max(x, lo), hi) (NaN x stays NaN; a NaN bound is no bound);  dx = g * [lo <= x <= hi]
struct ClampFn : Function<ClampFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, double min, double max) {
    ctx->save_for_backward({a});
    const float inf = std::numeric_limits<float>::infinity();
    const float lo = std::isnan(min) ? -inf : static_cast<float>(min);
    const float hi = std::isnan(max) ? inf : static_cast<float>(max);
    ctx->saved_data["lo"] = static_cast<double>(lo);
    ctx->saved_data["hi"] = static_cast<double>(hi);
    // PyTorch applies max first, then min: with lo > hi every element becomes hi.
    return map_unary(a, "clamp", [lo, hi](float x) {
      float y = x < lo ? lo : x;
      y = y > hi ? hi : y;
      return x != x ? x : y;
    });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    const float lo = static_cast<float>(std::get<double>(ctx->saved_data["lo"]));
    const float hi = static_cast<float>(std::get<double>(ctx->saved_data["hi"]));
    return {map_binary(g[0], ctx->get_saved_variables()[0], "clamp_backward",
                       [lo, hi](float gv, float x) { return (x >= lo && x <= hi) ? gv : 0.0f; })};
  }
};

}  // namespace

Tensor pow(const Tensor& a, double exponent) { return PowScalarFn::apply(a, exponent); }
Tensor pow(const Tensor& a, const Tensor& exponent) { return PowTensorFn::apply(a, exponent); }
Tensor exp(const Tensor& a) { return ExpFn::apply(a); }
Tensor log(const Tensor& a) { return LogFn::apply(a); }
Tensor sqrt(const Tensor& a) { return SqrtFn::apply(a); }
Tensor rsqrt(const Tensor& a) { return RsqrtFn::apply(a); }
Tensor abs(const Tensor& a) { return AbsFn::apply(a); }
Tensor clamp(const Tensor& a, double min, double max) { return ClampFn::apply(a, min, max); }

Tensor Tensor::exp() const { return quench::exp(*this); }
Tensor Tensor::log() const { return quench::log(*this); }
Tensor Tensor::pow(double exponent) const { return quench::pow(*this, exponent); }
Tensor Tensor::sqrt() const { return quench::sqrt(*this); }
Tensor Tensor::abs() const { return quench::abs(*this); }

}  // namespace quench
