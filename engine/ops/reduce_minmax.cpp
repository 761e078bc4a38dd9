// max / min over one dim or over all elements, and argmax / argmin. NaN counts as the extreme
// (PyTorch propagates NaN through max and min); ties go to the first occurrence.
#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "engine/elementwise.hpp"
#include "engine/ops/creation.hpp"
#include "engine/ops/reduce.hpp"
#include "engine/reduction.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Running extreme and its position; only a strictly better value (or a first NaN) replaces it.
template <bool Max>
struct ExtremeReducer {
  struct Acc {
    float v = 0.0f;
    int64_t i = -1;
  };
  Acc init() const { return {}; }
  void step(Acc& a, float v, int64_t idx) const {
    const bool better = Max ? v > a.v : v < a.v;
    if (idx == 0 || better || (v != v && a.v == a.v)) {
      a.v = v;
      a.i = idx;
    }
  }
};
template <bool Max>
struct ValueReducer : ExtremeReducer<Max> {
  float done(const typename ExtremeReducer<Max>::Acc& a, int64_t) const { return a.v; }
};
template <bool Max>
struct IndexReducer : ExtremeReducer<Max> {
  int32_t done(const typename ExtremeReducer<Max>::Acc& a, int64_t) const {
    return static_cast<int32_t>(a.i);
  }
};

// Checks `dim` (0 or -1 for a 0-dim tensor, which reduces its one element) and plans the reduction.
detail::ReducePlan plan_dim(const Tensor& x, int64_t dim, bool keepdim, const char* op) {
  check_dtype(x, kFloat32, op, "input");
  detail::ReducePlan p = detail::plan_reduction(x, {dim}, keepdim, op);
  QUENCH_CHECK(p.red_numel > 0, op, ": cannot reduce over dim ", dim, " of size 0 (input shape ",
               shape_str(x.sizes()), "); expected a non-empty dim");
  return p;
}

template <bool Max>
Tensor arg_extreme(const Tensor& x, int64_t dim, bool keepdim, const char* op) {
  detail::ReducePlan p = plan_dim(x, dim, keepdim, op);
  return detail::reduce<int32_t>(x, p, IndexReducer<Max>{}, kInt32);
}

// A NaN is always taken and then never replaced, so it propagates; otherwise only a strictly
// better value replaces the current one.
template <bool Max>
inline float take_extreme(float acc, float v) {
  const bool take = (Max ? v > acc : v < acc) | (v != v);
  return take ? v : acc;
}

// Max (min) of m >= 1 contiguous floats: 16 independent lanes so the loop vectorizes.
template <bool Max>
float extreme_row(const float* q, int64_t m) {
  constexpr int64_t kLanes = 16;
  float acc[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) acc[l] = q[0];
  int64_t i = 0;
  for (; i + kLanes <= m; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] = take_extreme<Max>(acc[l], q[i + l]);
  float r = acc[0];
  for (int64_t l = 1; l < kLanes; ++l) r = take_extreme<Max>(r, acc[l]);
  for (; i < m; ++i) r = take_extreme<Max>(r, q[i]);
  return r;
}

// Over all of a contiguous array, in fixed 64K-element chunks combined in order so the result
// does not depend on the thread count.
template <bool Max>
float extreme_all_contiguous(const float* p, int64_t n) {
  constexpr int64_t kChunk = 65536;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<float> part(chunks);
  kernels::parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      part[c] = extreme_row<Max>(p + c * kChunk, std::min(kChunk, n - c * kChunk));
  });
  float r = part[0];
  for (int64_t c = 1; c < chunks; ++c) r = take_extreme<Max>(r, part[c]);
  return r;
}

// Values over the middle dim of a contiguous [outer, len, inner] array into out[outer, inner]:
// one row at a time when inner == 1, else element-wise across rows (both loops vectorize).
template <bool Max>
void extreme_dim_contiguous(const float* p, int64_t outer, int64_t len, int64_t inner, float* out) {
  if (inner == 1) {
    kernels::parallel_for(outer, std::max<int64_t>(1, 16384 / len), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = extreme_row<Max>(p + o * len, len);
    });
    return;
  }
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  kernels::parallel_for(
      outer * blocks, std::max<int64_t>(1, 16384 / (len * kBlock)), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / blocks, j0 = (t % blocks) * kBlock, j1 = std::min(inner, j0 + kBlock);
          const float* src = p + o * len * inner;
          float* dst = out + o * inner;
          for (int64_t j = j0; j < j1; ++j) dst[j] = src[j];
          for (int64_t k = 1; k < len; ++k) {
            const float* row = src + k * inner;
            for (int64_t j = j0; j < j1; ++j) dst[j] = take_extreme<Max>(dst[j], row[j]);
          }
        }
      });
}

// Values of max / min over `dim`: the vectorized loops for a contiguous input, else the generic
// strided reduction.
Tensor extreme_values(const Tensor& x, int64_t dim, const detail::ReducePlan& p, bool is_max) {
  if (!x.is_contiguous() || x.dim() == 0) {
    if (is_max) return detail::reduce<float>(x, p, ValueReducer<true>{}, kFloat32);
    return detail::reduce<float>(x, p, ValueReducer<false>{}, kFloat32);
  }
  const int64_t d = wrap_dim(dim, x.dim(), is_max ? "max" : "min");
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= x.size(k);
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.size(k);
  Tensor out = Tensor::empty(p.out_shape, kFloat32);
  if (out.numel() == 0) return out;
  if (is_max) {
    extreme_dim_contiguous<true>(x.data_ptr<float>(), outer, x.size(d), inner, out.data_ptr<float>());
  } else {
    extreme_dim_contiguous<false>(x.data_ptr<float>(), outer, x.size(d), inner, out.data_ptr<float>());
  }
  return out;
}

// y = max(x, dim) (or min);  dx = g at the first extremal position along dim, 0 elsewhere
struct MaxMinDimFn : Function<MaxMinDimFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
    const char* op = is_max ? "max" : "min";
    detail::ReducePlan p = plan_dim(x, dim, keepdim, op);
    if (ctx->needs_input_grad(0)) {
      ctx->save_for_backward({is_max ? detail::reduce<int32_t>(x, p, IndexReducer<true>{}, kInt32)
                                     : detail::reduce<int32_t>(x, p, IndexReducer<false>{}, kInt32)});
      ctx->saved_data["shape"] = x.sizes();
      ctx->saved_data["dim"] = wrap_dim(dim, x.dim(), op);
    }
    return extreme_values(x, dim, p, is_max);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor idx = ctx->get_saved_variables()[0];
    const Shape& shape = std::get<Shape>(ctx->saved_data["shape"]);
    if (shape.empty()) return {g[0].reshape(Shape{})};
    Tensor gx = zeros(shape);
    const int64_t dim = std::get<int64_t>(ctx->saved_data["dim"]);
    // Outputs in row-major order over the kept dims: o = outer * inner + j, with `inner` the
    // product of the dims after `dim`.
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(dim) + 1; d < shape.size(); ++d) inner *= shape[d];
    const int64_t n = idx.numel(), len = shape[dim];
    Tensor gc = g[0].contiguous();
    const float* pg = gc.data_ptr<float>();
    const int32_t* pi = idx.data_ptr<int32_t>();
    float* px = gx.data_ptr<float>();
    for (int64_t o = 0; o < n; ++o) {
      const int64_t outer = o / inner, j = o % inner;
      px[outer * len * inner + static_cast<int64_t>(pi[o]) * inner + j] = pg[o];
    }
    return {gx};
  }
};

// y = max(x) over all elements (or min);  dx = g / k at each of the k elements equal to y (the NaN
// elements when y is NaN): the even split of PyTorch's max() / min() backward
struct MaxMinAllFn : Function<MaxMinAllFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, bool is_max) {
    const char* op = is_max ? "max" : "min";
    check_dtype(x, kFloat32, op, "input");
    QUENCH_CHECK(x.numel() > 0, op, ": cannot reduce an empty tensor (shape ", shape_str(x.sizes()),
                 "); expected at least one element");
    Tensor y;
    if (x.is_contiguous()) {
      const float* p = x.data_ptr<float>();
      y = full(Shape{}, is_max ? extreme_all_contiguous<true>(p, x.numel())
                               : extreme_all_contiguous<false>(p, x.numel()));
    } else {
      detail::ReducePlan p = detail::plan_reduction(x, {}, false, op);
      y = is_max ? detail::reduce<float>(x, p, ValueReducer<true>{}, kFloat32)
                 : detail::reduce<float>(x, p, ValueReducer<false>{}, kFloat32);
    }
    if (ctx->needs_input_grad(0)) ctx->save_for_backward({x, y});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const float y = v[1].item<float>();
    const bool y_nan = y != y;
    auto hit = [y, y_nan](float xv) { return y_nan ? xv != xv : xv == y; };
    Tensor xc = v[0].contiguous();
    const float* px = xc.data_ptr<float>();
    int64_t k = 0;
    for (int64_t i = 0; i < xc.numel(); ++i) k += hit(px[i]);
    const float share = g[0].item<float>() / static_cast<float>(k);
    return {detail::map_nary<float, float>(
        "max_backward", [hit, share](float xv) { return hit(xv) ? share : 0.0f; }, {v[0]})};
  }
};

}  // namespace

Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return MaxMinDimFn::apply(x, dim, keepdim, true); }
Tensor min(const Tensor& x, int64_t dim, bool keepdim) { return MaxMinDimFn::apply(x, dim, keepdim, false); }
Tensor max(const Tensor& x) { return MaxMinAllFn::apply(x, true); }
Tensor min(const Tensor& x) { return MaxMinAllFn::apply(x, false); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_extreme<true>(x, dim, keepdim, "argmax");
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_extreme<false>(x, dim, keepdim, "argmin");
}

Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return quench::argmax(*this, dim, keepdim); }

}  // namespace quench
