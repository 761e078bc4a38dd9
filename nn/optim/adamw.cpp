#include "nn/optim/adamw.hpp"

#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/adamw.hpp"
#include "kernels/parallel.hpp"

namespace quench::optim {

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions opt)
    : Optimizer(std::move(groups), opt.lr(), opt.weight_decay(), "AdamW"), opt_(opt) {
  const auto [b1, b2] = opt.betas();
  QUENCH_CHECK(opt.eps() >= 0.0, "AdamW: invalid eps ", opt.eps());
  QUENCH_CHECK(b1 >= 0.0 && b1 < 1.0 && b2 >= 0.0 && b2 < 1.0, "AdamW: betas must be in [0, 1), got (", b1,
               ", ", b2, ")");
}

void AdamW::step() {
  NoGradGuard ng;
  const double beta1 = opt_.betas().first, beta2 = opt_.betas().second;
  for_each_param([&](Tensor& p, const Tensor& grad, ParamState& s, double lr, double wd) {
    if (!s.buffers.count("exp_avg")) {
      s.buffers["exp_avg"] = zeros(p.sizes());
      s.buffers["exp_avg_sq"] = zeros(p.sizes());
    }
    const int64_t step = ++s.step;
    // Python-side scalars are doubles; the tensor kernels see them rounded to float. The FMAs of
    // kernels/adamw.hpp are where PyTorch's vectorized CPU kernels fuse (add with alpha, addcmul):
    // with them the result is bit-identical to PyTorch 1.13 on the golden test.
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    kernels::AdamWScalars k;
    k.decay = static_cast<float>(1.0 - lr * wd);
    k.b1 = static_cast<float>(beta1), k.b2 = static_cast<float>(beta2);
    k.one_m_b1 = static_cast<float>(1.0 - beta1), k.one_m_b2 = static_cast<float>(1.0 - beta2);
    k.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    k.eps = static_cast<float>(opt_.eps());
    k.neg_step = static_cast<float>(-(lr / bc1));
    float* w = p.data_ptr<float>();
    const float* g = grad.data_ptr<float>();
    float* m = s.buffers["exp_avg"].data_ptr<float>();
    float* v = s.buffers["exp_avg_sq"].data_ptr<float>();
    kernels::parallel_for(p.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      kernels::adamw_step(e - b, w + b, g + b, m + b, v + b, k);
    });
  });
}

}  // namespace quench::optim
