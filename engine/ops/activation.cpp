// Activations: relu, gelu (exact and tanh), sigmoid, tanh. Forward and backward side by side;
// formulas and evaluation order follow PyTorch's CPU kernels (GeluKernel, gelu_backward), with the
// vectorizable exp / erf / tanh of kernels/vmath.hpp in place of libm's; the exact GELU's contiguous
// runs go to kernels/gelu_rows.
#include <cmath>
#include <string>

#include "engine/autograd.hpp"
#include "engine/elementwise.hpp"
#include "engine/ops/pointwise.hpp"
#include "kernels/gelu_rows.hpp"
#include "kernels/vmath.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;
using detail::map_binary;
using detail::map_binary_rows;
using detail::map_unary;
using detail::map_unary_rows;

constexpr float kTanhBeta = 1.41421356237309504880f * 1.12837916709551257390f * 0.5f;  // sqrt(2/pi)
constexpr float kTanhKappa = 0.044715f;

// y = max(x, 0);  dx = g * [y > 0]  (NaN y passes g, as threshold_backward)
struct ReluFn : Function<ReluFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    // NaN passes through, as PyTorch's clamp_min-based relu.
    Tensor y = map_unary(a, "relu", [](float x) { return x < 0.0f ? 0.0f : x; });
    ctx->save_for_backward({y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "relu_backward",
                       [](float gv, float y) { return y <= 0.0f ? 0.0f : gv; })};
  }
};

// exact: y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2));  dx = g * (Phi(x) + x * phi(x))
// tanh:  y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
struct GeluFn : Function<GeluFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, bool tanh_approx) {
    ctx->save_for_backward({a});
    ctx->saved_data["tanh"] = tanh_approx;
    if (tanh_approx)
      return map_unary(a, "gelu", [](float x) {
        const float inner = kTanhBeta * (x + kTanhKappa * x * x * x);
        return 0.5f * x * (1.0f + kernels::vtanh(inner));
      });
    return map_unary_rows(a, "gelu", [](float x) { return kernels::vgelu(x); }, kernels::gelu_rows);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor x = ctx->get_saved_variables()[0];
    if (std::get<bool>(ctx->saved_data["tanh"]))
      return {map_binary(g[0], x, "gelu_backward", [](float gv, float xv) {
        const float x_sq = xv * xv;
        const float inner = kTanhBeta * (xv + kTanhKappa * x_sq * xv);
        const float t = kernels::vtanh(inner);
        const float left = 0.5f * xv, right = 1.0f + t;
        const float left_derivative = 0.5f * right;
        const float right_derivative =
            left * (1.0f - t * t) * (kTanhBeta * (1.0f + 3.0f * kTanhKappa * x_sq));
        return gv * (left_derivative + right_derivative);
      })};
    return {map_binary_rows(
        g[0], x, "gelu_backward", [](float gv, float xv) { return kernels::vgelu_backward(gv, xv); },
        kernels::gelu_backward_rows)};
  }
};

// y = 1 / (1 + exp(-x));  dx = g * y * (1 - y)
struct SigmoidFn : Function<SigmoidFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    // NaN is passed through as it is: left to the arithmetic, its sign came out differently in gcc's
    // scalar and vectorized loops.
    Tensor y = map_unary(a, "sigmoid", [](float x) { return x != x ? x : 1.0f / (1.0f + kernels::vexp(-x)); });
    ctx->save_for_backward({y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "sigmoid_backward",
                       [](float gv, float y) { return gv * ((1.0f - y) * y); })};
  }
};

// y = tanh(x);  dx = g * (1 - y^2)
struct TanhFn : Function<TanhFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    Tensor y = map_unary(a, "tanh", [](float x) { return kernels::vtanh(x); });
    ctx->save_for_backward({y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {map_binary(g[0], ctx->get_saved_variables()[0], "tanh_backward",
                       [](float gv, float y) { return gv * (1.0f - y * y); })};
  }
};

}  // namespace

Tensor relu(const Tensor& a) { return ReluFn::apply(a); }
Tensor gelu(const Tensor& a, const std::string& approximate) {
  QUENCH_CHECK(approximate == "none" || approximate == "tanh",
               "gelu: approximate must be \"none\" or "
               "\"tanh\", got \"",
               approximate, "\" (input shape ", shape_str(a.sizes()), ")");
  return GeluFn::apply(a, approximate == "tanh");
}
Tensor sigmoid(const Tensor& a) { return SigmoidFn::apply(a); }
Tensor tanh(const Tensor& a) { return TanhFn::apply(a); }

}  // namespace quench
