// softmax and log_softmax over one dim: numerically stable forward, fused backward.
#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// One row of n elements `s` apart. Exponentials in float, their sum in double.
inline void softmax_row(const float* x, float* y, int64_t n, int64_t s, bool log) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j * s]);
  double sum = 0.0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j * s] - m);
    const float ls = static_cast<float>(std::log(sum));
    for (int64_t j = 0; j < n; ++j) y[j * s] = (x[j * s] - m) - ls;
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const float e = std::exp(x[j * s] - m);
      y[j * s] = e;
      sum += e;
    }
    const float r = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) y[j * s] *= r;
  }
}

// softmax: dx = y * (g - sum(g * y));  log_softmax: dx = g - exp(y) * sum(g)
inline void softmax_row_backward(const float* y, const float* g, float* dx, int64_t n, int64_t s,
                                 bool log) {
  double acc = 0.0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) acc += g[j * s];
    const float sg = static_cast<float>(acc);
    for (int64_t j = 0; j < n; ++j) dx[j * s] = g[j * s] - std::exp(y[j * s]) * sg;
  } else {
    for (int64_t j = 0; j < n; ++j) acc += static_cast<double>(g[j * s]) * y[j * s];
    const float dot = static_cast<float>(acc);
    for (int64_t j = 0; j < n; ++j) dx[j * s] = y[j * s] * (g[j * s] - dot);
  }
}

// Calls row(offset, stride) for every row along the layout's middle dim, rows split over threads.
template <class Row>
void for_each_dim_row(const detail::DimLayout& l, Row row) {
  const int64_t rows = l.outer * l.inner;
  kernels::parallel_for(rows, detail::row_grain(l.n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      if (l.inner == 1) {
        row(r * l.n, int64_t{1});
      } else {
        row((r / l.inner) * l.n * l.inner + r % l.inner, l.inner);
      }
    }
  });
}

// y = softmax(x, dim) or log_softmax(x, dim)   x: any shape, y: same shape
struct SoftmaxFn : Function<SoftmaxFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, int64_t dim, bool log) {
    const char* op = log ? "log_softmax" : "softmax";
    check_dtype(x_in, kFloat32, op, "input");
    dim = wrap_dim(dim, x_in.dim(), op);
    Tensor x = x_in.contiguous();
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    const float* px = x.data_ptr<float>();
    float* py = y.data_ptr<float>();
    const detail::DimLayout l = detail::dim_layout(x.sizes(), dim);
    for_each_dim_row(l, [&](int64_t off, int64_t s) {
      if (s == 1) softmax_row(px + off, py + off, l.n, 1, log);
      else softmax_row(px + off, py + off, l.n, s, log);
    });
    ctx->save_for_backward({y});
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["log"] = log;
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor y = ctx->get_saved_variables()[0];
    const bool log = std::get<bool>(ctx->saved_data["log"]);
    const detail::DimLayout l = detail::dim_layout(y.sizes(), std::get<int64_t>(ctx->saved_data["dim"]));
    Tensor gc = g[0].contiguous();
    Tensor dx = Tensor::empty(y.sizes(), kFloat32);
    const float* py = y.data_ptr<float>();
    const float* pg = gc.data_ptr<float>();
    float* pd = dx.data_ptr<float>();
    for_each_dim_row(l, [&](int64_t off, int64_t s) {
      if (s == 1) softmax_row_backward(py + off, pg + off, pd + off, l.n, 1, log);
      else softmax_row_backward(py + off, pg + off, pd + off, l.n, s, log);
    });
    return {dx};
  }
};

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return SoftmaxFn::apply(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return SoftmaxFn::apply(x, dim, true); }
Tensor Tensor::softmax(int64_t dim) const { return quench::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return quench::log_softmax(*this, dim); }

}  // namespace quench
