// softmax and log_softmax over one dim: numerically stable forward, fused backward.
#include <array>
#include <cmath>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "engine/ops/row_math.hpp"
#include "kernels/isa.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Runs row(in, out) over every row along the layout's middle dim: in[k] points at the k-th input
// row, out at the output row. Rows strided by `inner` are copied into contiguous buffers first, so
// every dim goes through the same contiguous kernel and gives the same bits.
template <size_t NIn, class Row>
void for_each_dim_row(const detail::DimLayout& l, const std::array<const float*, NIn>& in, float* out,
                      Row row) {
  const int64_t rows = l.outer * l.inner, n = l.n, s = l.inner;
  kernels::parallel_for(rows, detail::row_grain(n), [&](int64_t b, int64_t e) {
    std::vector<float> buf(s == 1 ? 0 : (NIn + 1) * n);
    for (int64_t r = b; r < e; ++r) {
      const int64_t off = s == 1 ? r * n : (r / s) * n * s + r % s;
      std::array<const float*, NIn> src;
      if (s == 1) {
        for (size_t k = 0; k < NIn; ++k) src[k] = in[k] + off;
        row(src, out + off);
        continue;
      }
      for (size_t k = 0; k < NIn; ++k) {
        float* d = buf.data() + k * n;
        for (int64_t j = 0; j < n; ++j) d[j] = in[k][off + j * s];
        src[k] = d;
      }
      float* o = buf.data() + NIn * n;
      row(src, o);
      for (int64_t j = 0; j < n; ++j) out[off + j * s] = o[j];
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
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    for_each_dim_row<1>(l, {px}, py, [&](const std::array<const float*, 1>& src, float* dst) {
      detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE { detail::softmax_row(src[0], dst, l.n, log); });
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
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    for_each_dim_row<2>(l, {py, pg}, pd, [&](const std::array<const float*, 2>& src, float* dst) {
      detail::call_isa(avx2,
                       [&]() QUENCH_ROW_INLINE { detail::softmax_row_backward(src[0], src[1], dst, l.n, log); });
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
