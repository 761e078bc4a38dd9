// cross_entropy with class-index targets: fused log-softmax, ignore_index, label smoothing
// (as PyTorch 1.13), reductions none/mean/sum; fused backward softmax - (smoothed) one-hot.
#include <cmath>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "engine/ops/row_math.hpp"
#include "kernels/isa.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// logits [N, C, d...] seen as [N, C, inner]; one sample per (n, d...) position.
struct CeLayout {
  int64_t N = 1, C = 1, inner = 1;
  int64_t samples() const { return N * inner; }
  // Offset of class 0 of sample j; classes are `inner` apart.
  int64_t base(int64_t j) const { return (j / inner) * C * inner + j % inner; }
};

CeLayout check_cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double ls, Reduction reduction) {
  check_dtype(logits, kFloat32, "cross_entropy", "logits");
  check_dtype(target, kInt32, "cross_entropy", "target");
  QUENCH_CHECK(logits.dim() >= 1, "cross_entropy: expected logits [N, C] or [N, C, d...], got shape ",
               shape_str(logits.sizes()));
  QUENCH_CHECK(reduction != Reduction::batchmean,
               "cross_entropy: reduction batchmean is not supported; use none, mean or sum");
  QUENCH_CHECK(ls >= 0.0 && ls <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got ", ls);
  CeLayout l;
  Shape expected;
  if (logits.dim() == 1) {  // one unbatched sample [C], target 0-dim
    l.C = logits.size(0);
  } else {
    l.N = logits.size(0);
    l.C = logits.size(1);
    expected.push_back(l.N);
    for (int64_t d = 2; d < logits.dim(); ++d) {
      l.inner *= logits.size(d);
      expected.push_back(logits.size(d));
    }
  }
  QUENCH_CHECK(target.sizes() == expected, "cross_entropy: target of shape ", shape_str(target.sizes()),
               " does not match logits of shape ", shape_str(logits.sizes()), "; expected target shape ",
               shape_str(expected));
  QUENCH_CHECK(l.C >= 1, "cross_entropy: logits of shape ", shape_str(logits.sizes()), " have no classes");
  Tensor t = target.contiguous();
  const int32_t* pt = t.data_ptr<int32_t>();
  for (int64_t j = 0; j < t.numel(); ++j)
    QUENCH_CHECK(pt[j] == ignore_index || (pt[j] >= 0 && pt[j] < l.C), "cross_entropy: target ", pt[j],
                 " at position ", j, " is out of range for ", l.C, " classes (logits of shape ",
                 shape_str(logits.sizes()), "); expected 0 <= target < ", l.C, " or ignore_index ",
                 ignore_index);
  return l;
}

// loss_j = (1 - ls) * (-log p[t_j]) + ls / C * sum_c (-log p_c), 0 where t_j == ignore_index;
// mean divides by the number of samples not ignored (PyTorch 1.13 does so for both terms).
struct CrossEntropyFn : Function<CrossEntropyFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& logits_in, const Tensor& target_in,
                        int64_t ignore_index, double ls, Reduction reduction) {
    const CeLayout l = check_cross_entropy(logits_in, target_in, ignore_index, ls, reduction);
    Tensor x = logits_in.contiguous(), t = target_in.contiguous();
    const int64_t S = l.samples(), C = l.C, s = l.inner;
    Tensor lse = Tensor::empty({S}, kFloat32);
    std::vector<double> loss(S, 0.0);
    const float* px = x.data_ptr<float>();
    const int32_t* pt = t.data_ptr<int32_t>();
    float* pl = lse.data_ptr<float>();
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    kernels::parallel_for(S, detail::row_grain(C), [&](int64_t b, int64_t e) {
      std::vector<float> buf(2 * C);  // exponentials, and the gathered row when classes are strided
      detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
        for (int64_t j = b; j < e; ++j) {
          const float* xr = px + l.base(j);
          if (s != 1) {
            for (int64_t c = 0; c < C; ++c) buf[C + c] = xr[c * s];
            xr = buf.data() + C;
          }
          const float m = detail::row_max(xr, C);
          for (int64_t c = 0; c < C; ++c) buf[c] = detail::exp_approx(xr[c] - m);
          const double log_se = std::log(detail::row_sum(buf.data(), C));
          pl[j] = static_cast<float>(m + log_se);
          if (pt[j] == ignore_index) continue;
          const double nll = (m - static_cast<double>(xr[pt[j]])) + log_se;
          double lj = nll;
          if (ls > 0.0) {
            // sum_c -log p_c
            const double smooth = static_cast<double>(C) * (m + log_se) - detail::row_sum(xr, C);
            lj = (1.0 - ls) * nll + ls / static_cast<double>(C) * smooth;
          }
          loss[j] = lj;
        }
      });
    });
    int64_t valid = 0;
    for (int64_t j = 0; j < S; ++j) valid += pt[j] != ignore_index;
    ctx->save_for_backward({x, t, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["ls"] = ls;
    ctx->saved_data["reduction"] = static_cast<int64_t>(reduction);
    ctx->saved_data["valid"] = valid;
    if (reduction == Reduction::none) {
      Tensor out = Tensor::empty(t.sizes(), kFloat32);
      float* po = out.data_ptr<float>();
      for (int64_t j = 0; j < S; ++j) po[j] = static_cast<float>(loss[j]);
      return out;
    }
    double total = 0.0;
    for (int64_t j = 0; j < S; ++j) total += loss[j];
    // An all-ignored batch gives 0/0 = NaN, as in PyTorch.
    if (reduction == Reduction::mean) total /= static_cast<double>(valid);
    return scalar_tensor(total);
  }

  // dlogits_c = g_j * (p_c - (1 - ls) * [c == t_j] - ls / C), 0 for ignored samples
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &x = v[0], &t = v[1], &lse = v[2];
    auto& sd = ctx->saved_data;
    const int64_t ignore_index = std::get<int64_t>(sd["ignore_index"]);
    const double ls = std::get<double>(sd["ls"]);
    const auto reduction = static_cast<Reduction>(std::get<int64_t>(sd["reduction"]));
    CeLayout l;
    if (x.dim() == 1) {
      l.C = x.size(0);
    } else {
      l.N = x.size(0);
      l.C = x.size(1);
      for (int64_t d = 2; d < x.dim(); ++d) l.inner *= x.size(d);
    }
    Tensor gc = g[0].contiguous();
    const float* pg = gc.data_ptr<float>();
    const int64_t gstride = reduction == Reduction::none ? 1 : 0;
    const double gscale =
        reduction == Reduction::mean ? 1.0 / static_cast<double>(std::get<int64_t>(sd["valid"])) : 1.0;
    Tensor dx = Tensor::empty(x.sizes(), kFloat32);
    const float* px = x.data_ptr<float>();
    const int32_t* pt = t.data_ptr<int32_t>();
    const float* pl = lse.data_ptr<float>();
    float* pd = dx.data_ptr<float>();
    const int64_t C = l.C, s = l.inner;
    const float off_target = static_cast<float>(ls / static_cast<double>(C));
    const float on_target = static_cast<float>(1.0 - ls);
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    kernels::parallel_for(l.samples(), detail::row_grain(C), [&](int64_t b, int64_t e) {
      std::vector<float> buf(s == 1 ? 0 : 2 * C);
      detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
        for (int64_t j = b; j < e; ++j) {
          const float* xr = px + l.base(j);
          float* dr = pd + l.base(j);
          if (s != 1) {
            for (int64_t c = 0; c < C; ++c) buf[c] = xr[c * s];
            xr = buf.data();
            dr = buf.data() + C;
          }
          if (pt[j] == ignore_index) {
            for (int64_t c = 0; c < C; ++c) dr[c] = 0.f;
          } else {
            const float gj = static_cast<float>(pg[j * gstride] * gscale), m = pl[j];
            for (int64_t c = 0; c < C; ++c) dr[c] = gj * (detail::exp_approx(xr[c] - m) - off_target);
            dr[pt[j]] -= gj * on_target;
          }
          if (s != 1) {
            float* out = pd + l.base(j);
            for (int64_t c = 0; c < C; ++c) out[c * s] = dr[c];
          }
        }
      });
    });
    return {dx, Tensor()};
  }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  return CrossEntropyFn::apply(logits, target, ignore_index, label_smoothing, reduction);
}

}  // namespace quench
