// sum, mean and sum_to: the reductions autograd itself relies on.
#include <algorithm>

#include "engine/autograd.hpp"
#include "engine/ops/column_sums.hpp"
#include "engine/ops/pointwise.hpp"
#include "engine/ops/reduce.hpp"
#include "engine/ops/row_math.hpp"
#include "engine/reduction.hpp"
#include "kernels/isa.hpp"

namespace quench {
namespace detail {

ReducePlan plan_reduction(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                          const char* op) {
  const int64_t n = x.dim();
  // One slot even for a 0-dim tensor, whose only valid dims (0 and -1) name "the element".
  std::vector<bool> reduced(std::max<int64_t>(n, 1), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, n, op);
    QUENCH_CHECK(!reduced[w], op, ": dim ", w, " appears more than once in the reduction dims");
    reduced[w] = true;
  }
  ReducePlan p;
  for (int64_t d = 0; d < n; ++d) {
    if (reduced[d]) {
      p.red_sizes.push_back(x.sizes()[d]);
      p.red_strides.push_back(x.strides()[d]);
      p.red_numel *= x.sizes()[d];
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.kept_sizes.push_back(x.sizes()[d]);
      p.kept_strides.push_back(x.strides()[d]);
      p.out_shape.push_back(x.sizes()[d]);
    }
  }
  return p;
}

}  // namespace detail

namespace {

using autograd::AutogradContext;
using autograd::Function;

// Sums in double so long reductions keep float precision.
struct SumReducer {
  double init() const { return 0.0; }
  void step(double& a, float v, int64_t) const { a += v; }
  float done(double a, int64_t) const { return static_cast<float>(a); }
};
struct MeanReducer {
  double init() const { return 0.0; }
  void step(double& a, float v, int64_t) const { a += v; }
  float done(double a, int64_t n) const { return static_cast<float>(a / static_cast<double>(n)); }
};

// Leading dims reduced, trailing dims kept and contiguous: the broadcast-gradient case
// ([rows, cols] -> [cols]), in the fixed chunked order of engine/ops/column_sums.hpp.
bool try_column_sum(const Tensor& x, const std::vector<int64_t>& dims, const detail::ReducePlan& p,
                    Tensor& out, bool mean) {
  if (!x.is_contiguous() || dims.empty() || p.kept_sizes.empty()) return false;
  const int64_t nr = static_cast<int64_t>(dims.size());
  for (int64_t d : dims)
    if (wrap_dim(d, x.dim(), "sum") >= nr) return false;
  const int64_t rows = p.red_numel, cols = shape_numel(p.kept_sizes);
  out = Tensor::empty(p.out_shape, kFloat32);
  float* po = out.data_ptr<float>();
  const float* px = x.data_ptr<float>();
  detail::column_sums<1>(
      rows, cols,
      [&](int64_t r, int64_t j0, int64_t j1, double* acc) QUENCH_ROW_INLINE {
        const float* row = px + r * cols;
        for (int64_t j = j0; j < j1; ++j) acc[j] += row[j];
      },
      [&](int, int64_t c, double a) { po[c] = static_cast<float>(mean ? a / static_cast<double>(rows) : a); });
  return true;
}

Tensor sum_forward(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool mean) {
  const char* op = mean ? "mean" : "sum";
  check_dtype(x, kFloat32, op, "input");
  detail::ReducePlan p = detail::plan_reduction(x, dims, keepdim, op);
  Tensor out;
  if (try_column_sum(x, dims, p, out, mean)) return out;
  if (mean) return detail::reduce<float>(x, p, MeanReducer{}, kFloat32);
  return detail::reduce<float>(x, p, SumReducer{}, kFloat32);
}

// y = sum(x, dims)  or mean;  dx = expand(g) (/ n)
struct SumFn : Function<SumFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const std::vector<int64_t>& dims,
                        bool keepdim, bool mean) {
    ctx->saved_data["shape"] = x.sizes();
    detail::ReducePlan p = detail::plan_reduction(x, dims, keepdim, mean ? "mean" : "sum");
    ctx->saved_data["keep_shape"] = p.out_shape;
    if (!keepdim && x.dim() > 0) {
      // Shape of the result with the reduced dims kept as 1, to broadcast the gradient back.
      Shape ks = x.sizes();
      std::vector<int64_t> all = dims;
      if (all.empty())
        for (int64_t d = 0; d < x.dim(); ++d) all.push_back(d);
      for (int64_t d : all) ks[wrap_dim(d, x.dim(), "sum")] = 1;
      ctx->saved_data["keep_shape"] = ks;
    }
    ctx->saved_data["n"] = p.red_numel;
    ctx->saved_data["mean"] = mean;
    return sum_forward(x, dims, keepdim, mean);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto& s = ctx->saved_data;
    Tensor gk = g[0].reshape(std::get<Shape>(s["keep_shape"]));
    if (std::get<bool>(s["mean"])) gk = div(gk, static_cast<double>(std::get<int64_t>(s["n"])));
    return {gk.expand(std::get<Shape>(s["shape"])).contiguous()};
  }
};

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return SumFn::apply(x, dims, keepdim, false);
}
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return SumFn::apply(x, dims, keepdim, true);
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.sizes() == shape) return grad;
  const int64_t n = grad.dim(), k = static_cast<int64_t>(shape.size());
  QUENCH_CHECK(k <= n, "sum_to: cannot reduce shape ", shape_str(grad.sizes()), " to ",
               shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < n; ++d) {
    int64_t j = d - (n - k);
    if (j < 0) {
      dims.push_back(d);
    } else if (shape[j] == 1 && grad.sizes()[d] != 1) {
      dims.push_back(d);
    } else {
      QUENCH_CHECK(shape[j] == grad.sizes()[d], "sum_to: cannot reduce shape ",
                   shape_str(grad.sizes()), " to ", shape_str(shape));
    }
  }
  if (dims.empty()) return grad.reshape(shape);
  return sum(grad, dims, true).reshape(shape);
}

Tensor Tensor::sum() const { return quench::sum(*this); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const {
  return quench::sum(*this, dims, keepdim);
}
Tensor Tensor::mean() const { return quench::mean(*this); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return quench::mean(*this, dims, keepdim);
}

}  // namespace quench
