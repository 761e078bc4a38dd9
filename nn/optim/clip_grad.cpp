#include "nn/optim/clip_grad.hpp"

#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "kernels/parallel.hpp"

namespace quench::optim {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  const bool inf = std::isinf(norm_type) && norm_type > 0;
  QUENCH_CHECK(inf || norm_type == 2.0, "clip_grad_norm_: norm_type must be 2 or infinity, got ", norm_type);
  QUENCH_CHECK(max_norm >= 0.0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  NoGradGuard ng;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    QUENCH_CHECK(g.dtype() == kFloat32 && g.is_contiguous(), "clip_grad_norm_: gradient of shape ",
                 shape_str(g.sizes()), " must be contiguous float32");
    grads.push_back(g);
  }
  double total = 0.0;
  for (const Tensor& g : grads) {
    const float* d = g.data_ptr<float>();
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double a = std::abs(static_cast<double>(d[i]));
      total = inf ? std::max(total, a) : total + a * a;
    }
  }
  if (!inf) total = std::sqrt(total);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    const float c = static_cast<float>(coef);
    for (Tensor& g : grads) {
      float* d = g.data_ptr<float>();
      kernels::parallel_for(g.numel(), 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] *= c;
      });
    }
  }
  return total;
}

}  // namespace quench::optim
