// cat and stack: joining tensors along a dim; backward slices the gradient.
#include <cstring>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/shape_ops.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// As PyTorch, 1-D empty tensors are skipped by cat whatever the other shapes.
bool skipped(const Tensor& t) { return t.dim() == 1 && t.size(0) == 0; }

// out = cat(ts, dim)   ts[k]: [..., n_k, ...] equal elsewhere; out: [..., sum n_k, ...]
struct CatFn : Function<CatFn> {
  static Tensor forward(AutogradContext* ctx, const std::vector<Tensor>& ts, int64_t dim) {
    QUENCH_CHECK(!ts.empty(), "cat: expected a non-empty list of tensors");
    for (size_t k = 0; k < ts.size(); ++k)
      QUENCH_CHECK(ts[k].defined(), "cat: tensor ", k, " is undefined");
    size_t ref = 0;
    while (ref + 1 < ts.size() && skipped(ts[ref])) ++ref;
    const Tensor& r = ts[ref];
    dim = wrap_dim(dim, std::max<int64_t>(r.dim(), 1), "cat");
    QUENCH_CHECK(r.dim() >= 1, "cat: zero-dimensional tensor ", ref, " cannot be concatenated");
    Shape out_shape = r.sizes();
    out_shape[dim] = 0;
    Shape lens;  // size along dim per tensor, -1 when skipped
    for (size_t k = 0; k < ts.size(); ++k) {
      const Tensor& t = ts[k];
      QUENCH_CHECK(t.dtype() == r.dtype(), "cat: tensor ", k, " has dtype ", dtype_name(t.dtype()),
                   ", expected ", dtype_name(r.dtype()), " like tensor ", ref);
      if (skipped(t) && k != ref) {
        lens.push_back(-1);
        continue;
      }
      bool ok = t.dim() == r.dim();
      for (int64_t d = 0; ok && d < r.dim(); ++d) ok = d == dim || t.size(d) == r.size(d);
      QUENCH_CHECK(ok, "cat: tensor ", k, " has shape ", shape_str(t.sizes()), " but tensor ", ref,
                   " has shape ", shape_str(r.sizes()), "; expected equal sizes except in dim ", dim);
      lens.push_back(t.size(dim));
      out_shape[dim] += t.size(dim);
    }
    Tensor out = Tensor::empty(out_shape, r.dtype());
    const detail::DimLayout l = detail::dim_layout(out_shape, dim);
    const size_t es = element_size(r.dtype());
    const int64_t K = static_cast<int64_t>(ts.size());
    std::vector<Tensor> src(K);
    std::vector<int64_t> start(K, 0);  // element offset of tensor k inside an output row
    int64_t acc = 0;
    for (int64_t k = 0; k < K; ++k) {
      if (lens[k] < 0) continue;
      src[k] = ts[k].contiguous();
      start[k] = acc * l.inner;
      acc += lens[k];
    }
    const int64_t row = l.n * l.inner;
    char* po = static_cast<char*>(out.raw_data());
    kernels::parallel_for(l.outer * K, detail::row_grain(row / std::max<int64_t>(1, K)),
                          [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / K, k = t % K;
        if (lens[k] <= 0) continue;
        const int64_t chunk = lens[k] * l.inner;
        std::memcpy(po + (o * row + start[k]) * es,
                    static_cast<const char*>(src[k].raw_data()) + o * chunk * es, chunk * es);
      }
    });
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["lens"] = lens;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    const int64_t dim = std::get<int64_t>(ctx->saved_data["dim"]);
    const Shape& lens = std::get<Shape>(ctx->saved_data["lens"]);
    tensor_list grads;
    int64_t start = 0;
    for (int64_t len : lens) {
      if (len < 0) {
        grads.push_back(Tensor());
        continue;
      }
      grads.push_back(g[0].narrow(dim, start, len));
      start += len;
    }
    return grads;
  }
};

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) { return CatFn::apply(tensors, dim); }

// out = cat(unsqueeze(ts[k], dim))   ts[k]: all the same shape; out: that shape with K inserted at dim
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  QUENCH_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  for (size_t k = 0; k < tensors.size(); ++k) {
    QUENCH_CHECK(tensors[k].defined(), "stack: tensor ", k, " is undefined");
    QUENCH_CHECK(tensors[k].sizes() == tensors[0].sizes(), "stack: tensor ", k, " has shape ",
                 shape_str(tensors[k].sizes()), " but tensor 0 has shape ",
                 shape_str(tensors[0].sizes()), "; stack expects all tensors of the same shape");
  }
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(t.unsqueeze(dim));
  return cat(parts, dim);
}

}  // namespace quench
