#include "nn/optim/sgd.hpp"

#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"

namespace quench::optim {

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opt)
    : Optimizer(std::move(groups), opt.lr(), opt.weight_decay(), "SGD"), opt_(opt) {
  QUENCH_CHECK(opt.momentum() >= 0.0, "SGD: invalid momentum ", opt.momentum());
  QUENCH_CHECK(!opt.nesterov() || (opt.momentum() > 0.0 && opt.dampening() == 0.0),
               "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", opt.momentum(),
               " dampening ", opt.dampening());
}

void SGD::step() {
  NoGradGuard ng;
  // Scalars rounded to float once, as PyTorch's CPU kernels do with Python float arguments; fma()
  // where PyTorch's vectorized add-with-alpha fuses (bit-identical to PyTorch 1.13 on the golden test).
  const float mom = static_cast<float>(opt_.momentum());
  const float keep = static_cast<float>(1.0 - opt_.dampening());
  const bool use_mom = opt_.momentum() != 0.0, nesterov = opt_.nesterov();
  for_each_param([&](Tensor& p, const Tensor& grad, ParamState& s, double lr, double wd) {
    const int64_t n = p.numel();
    float* w = p.data_ptr<float>();
    const float* g = grad.data_ptr<float>();
    const float wdf = static_cast<float>(wd), neg_lr = static_cast<float>(-lr);
    const bool first = use_mom && !s.buffers.count("momentum_buffer");
    if (first) s.buffers["momentum_buffer"] = empty(p.sizes());
    float* buf = use_mom ? s.buffers["momentum_buffer"].data_ptr<float>() : nullptr;
    ++s.step;
    kernels::parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float d = wd != 0.0 ? std::fma(wdf, w[i], g[i]) : g[i];
        if (use_mom) {
          buf[i] = first ? d : std::fma(keep, d, buf[i] * mom);
          d = nesterov ? std::fma(mom, buf[i], d) : buf[i];
        }
        w[i] = std::fma(neg_lr, d, w[i]);
      }
    });
  });
}

}  // namespace quench::optim
