// Pointwise losses: mse_loss, l1_loss, kl_div. Each is a table row (loss and its two partial
// derivatives) run by one Function template that applies the reduction.
#include <cmath>
#include <string>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// l = (x - t)^2
struct Mse {
  static constexpr const char* name = "mse_loss";
  static double loss(float x, float t) { const double d = static_cast<double>(x) - t; return d * d; }
  static float d_input(float x, float t) { return 2.f * (x - t); }
  static float d_target(float x, float t) { return -2.f * (x - t); }
};
// l = |x - t|, derivative sign(x - t) (0 at 0, as PyTorch)
struct L1 {
  static constexpr const char* name = "l1_loss";
  static double loss(float x, float t) { return std::abs(static_cast<double>(x) - t); }
  static float sign(float d) { return static_cast<float>((d > 0.f) - (d < 0.f)); }
  static float d_input(float x, float t) { return sign(x - t); }
  static float d_target(float x, float t) { return -sign(x - t); }
};
// x = log q, t = p: l = t * (log t - x), 0 where t == 0
struct KlDiv {
  static constexpr const char* name = "kl_div";
  static double loss(float x, float t) {
    return t == 0.f ? 0.0 : static_cast<double>(t) * (std::log(static_cast<double>(t)) - x);
  }
  static float d_input(float, float t) { return -t; }
  static float d_target(float x, float t) { return t == 0.f ? 0.f : std::log(t) + 1.f - x; }
};
// x = log q, t = log p: l = exp(t) * (t - x), 0 where p = exp(t) == 0 (PyTorch gives 0 * -inf = NaN
// for t = -inf; a zero probability contributes nothing, as in the non-log form)
struct KlDivLogTarget {
  static constexpr const char* name = "kl_div";
  static double loss(float x, float t) {
    const double p = std::exp(static_cast<double>(t));
    return p == 0.0 ? 0.0 : p * (static_cast<double>(t) - x);
  }
  static float d_input(float, float t) { return -std::exp(t); }
  static float d_target(float x, float t) {
    const float p = std::exp(t);
    return p == 0.f ? 0.f : p * (t - x + 1.f);
  }
};

// The divisor a reduction applies to the summed loss (none and sum: 1).
double reduction_divisor(Reduction r, const Shape& shape) {
  if (r == Reduction::mean) return static_cast<double>(shape_numel(shape));
  if (r == Reduction::batchmean && !shape.empty()) return static_cast<double>(shape[0]);
  return 1.0;
}

// out = reduce(L::loss(input, target))   input, target: same shape; out: that shape or 0-dim
template <class L>
struct PointwiseLossFn : Function<PointwiseLossFn<L>> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input_in, const Tensor& target_in,
                        Reduction reduction) {
    check_dtype(input_in, kFloat32, L::name, "input");
    check_dtype(target_in, kFloat32, L::name, "target");
    QUENCH_CHECK(input_in.sizes() == target_in.sizes(), L::name, ": input of shape ",
                 shape_str(input_in.sizes()), " and target of shape ", shape_str(target_in.sizes()),
                 " must have the same shape");
    QUENCH_CHECK(reduction != Reduction::batchmean || std::string(L::name) == "kl_div", L::name,
                 ": reduction batchmean is only defined for kl_div; use none, mean or sum");
    Tensor x = input_in.contiguous(), t = target_in.contiguous();
    const float* px = x.data_ptr<float>();
    const float* pt = t.data_ptr<float>();
    const int64_t n = x.numel();
    ctx->save_for_backward({x, t});
    ctx->saved_data["reduction"] = static_cast<int64_t>(reduction);
    if (reduction == Reduction::none) {
      Tensor out = Tensor::empty(x.sizes(), kFloat32);
      float* po = out.data_ptr<float>();
      kernels::parallel_for(n, 8192, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) po[i] = static_cast<float>(L::loss(px[i], pt[i]));
      });
      return out;
    }
    const double total = detail::deterministic_sum(n, [&](int64_t i) { return L::loss(px[i], pt[i]); });
    return scalar_tensor(total / reduction_divisor(reduction, x.sizes()));
  }

  // dinput = g * dL/dx, dtarget = g * dL/dt, g divided as the reduction divided
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &x = v[0], &t = v[1];
    const auto reduction = static_cast<Reduction>(std::get<int64_t>(ctx->saved_data["reduction"]));
    Tensor gc = g[0].contiguous();
    const float* pg = gc.data_ptr<float>();
    const int64_t gs = reduction == Reduction::none ? 1 : 0;
    const float scale = static_cast<float>(1.0 / reduction_divisor(reduction, x.sizes()));
    const float* px = x.data_ptr<float>();
    const float* pt = t.data_ptr<float>();
    const bool need_x = ctx->needs_input_grad(0), need_t = ctx->needs_input_grad(1);
    Tensor dx = need_x ? Tensor::empty(x.sizes(), kFloat32) : Tensor();
    Tensor dt = need_t ? Tensor::empty(x.sizes(), kFloat32) : Tensor();
    float* pdx = need_x ? dx.data_ptr<float>() : nullptr;
    float* pdt = need_t ? dt.data_ptr<float>() : nullptr;
    kernels::parallel_for(x.numel(), 8192, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float gi = pg[i * gs] * scale;
        if (pdx) pdx[i] = gi * L::d_input(px[i], pt[i]);
        if (pdt) pdt[i] = gi * L::d_target(px[i], pt[i]);
      }
    });
    return {dx, dt};
  }
};

}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  return PointwiseLossFn<Mse>::apply(input, target, reduction);
}
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  return PointwiseLossFn<L1>::apply(input, target, reduction);
}
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  if (log_target) return PointwiseLossFn<KlDivLogTarget>::apply(input, target, reduction);
  return PointwiseLossFn<KlDiv>::apply(input, target, reduction);
}

}  // namespace quench
