// add, sub, mul, div (tensor and scalar forms) and neg: forward and backward side by side.
#include "engine/autograd.hpp"
#include "engine/elementwise.hpp"
#include "engine/ops/pointwise.hpp"
#include "engine/ops/reduce.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// y = a + alpha * b   (broadcast)
struct AddFn : Function<AddFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b, double alpha) {
    ctx->saved_data["a"] = a.sizes();
    ctx->saved_data["b"] = b.sizes();
    ctx->saved_data["alpha"] = alpha;
    const float al = static_cast<float>(alpha);
    if (alpha == 1.0) return detail::map_binary(a, b, "add", [](float x, float y) { return x + y; });
    return detail::map_binary(a, b, "add", [al](float x, float y) { return x + al * y; });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto& s = ctx->saved_data;
    double alpha = std::get<double>(s["alpha"]);
    Tensor ga = ctx->needs_input_grad(0) ? sum_to(g[0], std::get<Shape>(s["a"])) : Tensor();
    Tensor gb;
    if (ctx->needs_input_grad(1))
      gb = sum_to(alpha == 1.0 ? g[0] : mul(g[0], alpha), std::get<Shape>(s["b"]));
    return {ga, gb};
  }
};

// y = a * b   (broadcast)
struct MulFn : Function<MulFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    ctx->save_for_backward({ctx->needs_input_grad(1) ? a : Tensor(),
                            ctx->needs_input_grad(0) ? b : Tensor()});
    ctx->saved_data["a"] = a.sizes();
    ctx->saved_data["b"] = b.sizes();
    return detail::map_binary(a, b, "mul", [](float x, float y) { return x * y; });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    auto& s = ctx->saved_data;
    Tensor ga = ctx->needs_input_grad(0) ? sum_to(mul(g[0], v[1]), std::get<Shape>(s["a"])) : Tensor();
    Tensor gb = ctx->needs_input_grad(1) ? sum_to(mul(g[0], v[0]), std::get<Shape>(s["b"])) : Tensor();
    return {ga, gb};
  }
};

// y = a / b   (broadcast); da = g / b, db = -g * a / b^2 = -g * y / b
struct DivFn : Function<DivFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    Tensor y = detail::map_binary(a, b, "div", [](float x, float z) { return x / z; });
    ctx->save_for_backward({b, ctx->needs_input_grad(1) ? y : Tensor()});
    ctx->saved_data["a"] = a.sizes();
    ctx->saved_data["b"] = b.sizes();
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    auto& s = ctx->saved_data;
    Tensor g_over_b = div(g[0], v[0]);
    Tensor ga = ctx->needs_input_grad(0) ? sum_to(g_over_b, std::get<Shape>(s["a"])) : Tensor();
    Tensor gb;
    if (ctx->needs_input_grad(1)) gb = sum_to(neg(mul(g_over_b, v[1])), std::get<Shape>(s["b"]));
    return {ga, gb};
  }
};

// y = a * s + c   (scalar affine; covers add, mul, neg, rsub with a scalar)
struct AffineFn : Function<AffineFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, double scale, double shift) {
    ctx->saved_data["scale"] = scale;
    const float s = static_cast<float>(scale), c = static_cast<float>(shift);
    if (shift == 0.0) return detail::map_unary(a, "mul", [s](float x) { return x * s; });
    if (scale == 1.0) return detail::map_unary(a, "add", [c](float x) { return x + c; });
    return detail::map_unary(a, "affine", [s, c](float x) { return x * s + c; });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    double scale = std::get<double>(ctx->saved_data["scale"]);
    return {scale == 1.0 ? g[0] : mul(g[0], scale)};
  }
};

// y = s / a;  da = -g * s / a^2 = -g * y / a
struct RDivFn : Function<RDivFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, double s) {
    const float sf = static_cast<float>(s);
    Tensor y = detail::map_unary(a, "rdiv", [sf](float x) { return sf / x; });
    ctx->save_for_backward({a, y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    return {neg(div(mul(g[0], v[1]), v[0]))};
  }
};

// y = a / s   (true division, as PyTorch; not a * (1/s), which rounds differently)
struct DivScalarFn : Function<DivScalarFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, double s) {
    ctx->saved_data["s"] = s;
    const float sf = static_cast<float>(s);
    return detail::map_unary(a, "div", [sf](float x) { return x / sf; });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    return {DivScalarFn::apply(g[0], std::get<double>(ctx->saved_data["s"]))};
  }
};

}  // namespace

Tensor div(const Tensor& a, double s) { return DivScalarFn::apply(a, s); }
Tensor add(const Tensor& a, const Tensor& b, double alpha) { return AddFn::apply(a, b, alpha); }
Tensor sub(const Tensor& a, const Tensor& b, double alpha) { return AddFn::apply(a, b, -alpha); }
Tensor mul(const Tensor& a, const Tensor& b) { return MulFn::apply(a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return DivFn::apply(a, b); }
Tensor add(const Tensor& a, double s) { return AffineFn::apply(a, 1.0, s); }
Tensor mul(const Tensor& a, double s) { return AffineFn::apply(a, s, 0.0); }
Tensor rsub(const Tensor& a, double s) { return AffineFn::apply(a, -1.0, s); }
Tensor rdiv(const Tensor& a, double s) { return RDivFn::apply(a, s); }
Tensor neg(const Tensor& a) { return AffineFn::apply(a, -1.0, 0.0); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return div(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(double s, const Tensor& a) { return rsub(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(double s, const Tensor& a) { return rdiv(a, s); }
Tensor Tensor::operator-() const { return neg(*this); }

}  // namespace quench
