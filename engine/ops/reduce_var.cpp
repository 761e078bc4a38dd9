// var over dims with a correction (Bessel's by default), forward and backward.
#include <algorithm>

#include "engine/autograd.hpp"
#include "engine/elementwise.hpp"
#include "engine/ops/reduce.hpp"
#include "engine/reduction.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Sums of d = x - x0 and d^2 in double, shifted by the first element x0 so that a large mean does
// not cancel the variance away: M2 = sum d^2 - (sum d)^2 / n, var = M2 / max(0, n - correction)
// (0/0 = NaN and M2/0 = inf, as torch.var).
struct VarReducer {
  int64_t correction;
  struct Acc {
    double x0 = 0.0, s = 0.0, s2 = 0.0;
  };
  Acc init() const { return {}; }
  void step(Acc& a, float v, int64_t idx) const {
    if (idx == 0) a.x0 = v;
    const double d = static_cast<double>(v) - a.x0;
    a.s += d;
    a.s2 += d * d;
  }
  float done(const Acc& a, int64_t n) const {
    const double m2 = std::max(0.0, a.s2 - a.s * a.s / static_cast<double>(n));
    return static_cast<float>(m2 / static_cast<double>(std::max<int64_t>(0, n - correction)));
  }
};

// The result's shape with every reduced dim kept as 1, to broadcast the gradient back.
Shape keepdim_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape ks = x.sizes();
  if (dims.empty() || x.dim() == 0) return Shape(ks.size(), 1);
  for (int64_t d : dims) ks[wrap_dim(d, x.dim(), "var")] = 1;
  return ks;
}

// y = sum((x - mean)^2) / (n - correction) over dims;  dx = g * 2 (x - mean) / (n - correction)
struct VarFn : Function<VarFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        int64_t correction, bool keepdim) {
    check_dtype(x, kFloat32, "var", "input");
    detail::ReducePlan p = detail::plan_reduction(x, dims, keepdim, "var");
    ctx->save_for_backward({x});
    ctx->saved_data["dims"] = Shape(dims);
    ctx->saved_data["keep_shape"] = keepdim_shape(x, dims);
    ctx->saved_data["divisor"] = static_cast<double>(std::max<int64_t>(0, p.red_numel - correction));
    return detail::reduce<float>(x, p, VarReducer{correction}, kFloat32);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor x = ctx->get_saved_variables()[0];
    auto& s = ctx->saved_data;
    const Shape& dims = std::get<Shape>(s["dims"]);
    const float c = static_cast<float>(2.0 / std::get<double>(s["divisor"]));
    Tensor m = mean(x, dims, true);
    Tensor gk = g[0].reshape(std::get<Shape>(s["keep_shape"]));
    return {detail::map_nary<float, float, float, float>(
        "var_backward", [c](float gv, float xv, float mv) { return (c * gv) * (xv - mv); }, {gk, x, m})};
  }
};

}  // namespace

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  return VarFn::apply(x, dims, correction, keepdim);
}

}  // namespace quench
